/* Alert e-mail over SMTP, with STARTTLS (mbedTLS) and AUTH PLAIN/LOGIN,
 * driven by the master's event loop, retried with backoff. */
#ifndef KEEL_MONITOR_MAIL_H
#define KEEL_MONITOR_MAIL_H

#include "core/loop-t.h"
#include "core/settings-t.h"

/* Sends one message to every recipient of the settings (copied: the
 * config may go away meanwhile). Failures are logged, never returned. */
void monitor_mail_send(struct core_loop *loop, const struct keel_email_conf *conf,
		     const char *node, const char *subject, const char *body);

/* Abandons what is still being sent (at shutdown). */
void monitor_mail_stop(void);

/* Messages given up on after every retry. */
unsigned long monitor_mail_failures(void);

#endif
