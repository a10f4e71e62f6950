/* capexec.h — ask capexec's broker for files, sockets, names, users, groups,
 * syslog and sysctl values the service's declaration grants ([broker]).
 *
 * Link with -lcapexec_client. The service inherits its connection to the
 * broker as the descriptor named by CAPEXEC_BROKER_FD; capexec_broker_init()
 * picks it up. Calls are serialised per handle and safe from any thread.
 * Functions return -1 with errno set on failure (the _r lookups return the
 * error number, as getpwnam_r(3) does). A request no grant covers fails with
 * EACCES (ENOENT for lookups), and the broker logs what would allow it.
 * Wire format: docs/broker-protocol.md. */
#ifndef CAPEXEC_H
#define CAPEXEC_H

#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct capexec_broker capexec_broker;

/* The connection named by CAPEXEC_BROKER_FD; NULL with errno ENOENT when the
 * service has no broker. */
capexec_broker *capexec_broker_init(void);
void capexec_broker_free(capexec_broker *b);

/* open(2) of a granted absolute path; the descriptor is close-on-exec. */
int capexec_open(capexec_broker *b, const char *path, int flags, mode_t mode);

/* A socket made in the host's network namespace, connected to (bound to) a
 * granted AF_INET or AF_INET6 address. protocol: IPPROTO_TCP (or 0) or
 * IPPROTO_UDP. */
int capexec_connect(capexec_broker *b, int protocol, const struct sockaddr *addr, socklen_t len);
int capexec_bind(capexec_broker *b, int protocol, const struct sockaddr *addr, socklen_t len);

/* Up to max addresses of a granted name (family AF_UNSPEC, AF_INET or
 * AF_INET6; ports are 0); returns how many were written. */
int capexec_getaddrinfo(capexec_broker *b, const char *name, int family, struct sockaddr_storage *out, size_t max);

/* As getpwnam_r(3) and getgrnam_r(3), for granted names only. */
int capexec_getpwnam_r(capexec_broker *b, const char *name, struct passwd *pwd, char *buf, size_t buflen, struct passwd **result);
int capexec_getgrnam_r(capexec_broker *b, const char *name, struct group *grp, char *buf, size_t buflen, struct group **result);

/* One line to the host's syslog, tagged with the unit's name. */
int capexec_syslog(capexec_broker *b, int priority, const char *message);

/* A granted sysctl value ("net.core.somaxconn"); returns its full length. */
ssize_t capexec_sysctl_read(capexec_broker *b, const char *key, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
