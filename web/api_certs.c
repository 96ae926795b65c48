/* Certificates: the ones in use (admin and listeners) with what they
 * say, and uploading a pair into state_dir/certs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "api.h"
#include "core/clock.h"
#include "core/conf.h"
#include "core/control.h"
#include "core/event.h"
#include "core/log.h"
#include "core/settings.h"
#include "core/state.h"
#include "core/status.h"
#include "core/store.h"
#include "core/tls.h"

static void put_cert(struct core_buf *b, const char *used_by, const char *cert, const char *key)
{
	struct core_tls_pair p = { cert, key };
	struct core_tls_info info;
	char err[384];

	web_api_put(b, "{\"used_by\":");
	core_json_str(b, used_by);
	web_api_put(b, ",\"cert\":");
	core_json_str(b, cert);
	web_api_put(b, ",\"key\":");
	core_json_str(b, key);
	if (core_tls_pair_info(&p, &info, err, sizeof(err)) != CORE_OK) {
		web_api_put(b, ",\"error\":");
		core_json_str(b, err);
	} else {
		web_api_put(b, ",\"subject\":");
		core_json_str(b, info.subject);
		web_api_put(b, ",\"issuer\":");
		core_json_str(b, info.issuer);
		web_api_put(b, ",\"names\":");
		core_json_str(b, info.names);
		core_buf_printf(b, ",\"not_before\":\"%s\",\"not_after\":\"%s\",\"fingerprint\":\"%s\","
			"\"self_signed\":%s", info.not_before, info.not_after, info.fingerprint,
		     info.self_signed ? "true" : "false");
	}
	web_api_put(b, "}");
}

enum MHD_Result web_api_certs(struct web_req *r)
{
	const struct keel_conf *k = core_settings_of(core_control_conf());
	const struct keel_listener_conf *ln = k->listeners.v;
	const struct keel_cert_conf *cc;
	struct core_buf b;
	enum MHD_Result rc;
	char who[160], crt[300], key[300];
	size_t i, j, n = 0;

	core_buf_init(&b, 4 << 20);
	web_api_put(&b, "{\"certificates\":[");
	cc = k->admin.tls.certificates.v;
	for (j = 0; j < k->admin.tls.certificates.n; j++, n++) {
		web_api_put(&b, n ? "," : "");
		put_cert(&b, "admin", cc[j].cert, cc[j].key);
	}
	if (k->admin.tls.enabled && k->admin.tls.certificates.n == 0) {
		snprintf(crt, sizeof(crt), "%s/admin.crt", k->state_dir);
		snprintf(key, sizeof(key), "%s/admin.key", k->state_dir);
		web_api_put(&b, n++ ? "," : "");
		put_cert(&b, "admin (made by keel)", crt, key);
	}
	for (i = 0; i < k->listeners.n; i++) {
		cc = ln[i].tls.certificates.v;
		snprintf(who, sizeof(who), "listener %s", ln[i].address.text);
		for (j = 0; j < ln[i].tls.certificates.n; j++, n++) {
			web_api_put(&b, n ? "," : "");
			put_cert(&b, who, cc[j].cert, cc[j].key);
		}
	}
	web_api_put(&b, "]}\n");
	rc = web_api_reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}

static bool cert_name_ok(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
		      (s[n] >= '0' && s[n] <= '9') || s[n] == '-' || s[n] == '_' ||
		      (s[n] == '.' && n > 0)))
			return false;
	return n > 0 && n < 64;
}

/*
 * POST /api/v1/certificates {"name", "cert", "key"}: PEM text, checked
 * (parses, the key matches), kept as state_dir/certs/NAME.crt and .key.
 * Replacing a pair the running configuration uses reloads it: new
 * handshakes get the new certificate, open connections carry on.
 */
enum MHD_Result web_api_cert_upload(struct web_req *r)
{
	const struct keel_conf *k = core_settings_of(core_control_conf());
	const char *name, *cert, *key;
	struct core_tls_pair p;
	struct web_json j;
	char dir[300], tc[400], tk[400], fc[400], fk[400], err[512];
	bool replaced;
	struct core_buf b;
	enum MHD_Result rc;

	if (!web_json_parse(&j, &r->body))
		return web_api_error(r, MHD_HTTP_BAD_REQUEST, NULL, "the body must be a JSON object");
	name = web_json_str(&j, "name");
	cert = web_json_str(&j, "cert");
	key = web_json_str(&j, "key");
	if (name == NULL || !cert_name_ok(name)) {
		web_json_free(&j);
		return web_api_error(r, MHD_HTTP_BAD_REQUEST, "name",
				   "a name is 1..63 letters, digits, '-', '_', '.'");
	}
	if (cert == NULL || strstr(cert, "-----BEGIN CERTIFICATE-----") == NULL) {
		web_json_free(&j);
		return web_api_error(r, MHD_HTTP_BAD_REQUEST, "cert",
				   "paste the certificate in PEM (-----BEGIN CERTIFICATE-----...)");
	}
	if (key == NULL || strstr(key, "PRIVATE KEY-----") == NULL) {
		web_json_free(&j);
		return web_api_error(r, MHD_HTTP_BAD_REQUEST, "key",
				   "paste the private key in PEM (-----BEGIN ... PRIVATE KEY-----)");
	}
	snprintf(dir, sizeof(dir), "%s/certs", k->state_dir);
	snprintf(tc, sizeof(tc), "%s/.%s.crt.check", dir, name);
	snprintf(tk, sizeof(tk), "%s/.%s.key.check", dir, name);
	snprintf(fc, sizeof(fc), "%s/%s.crt", dir, name);
	snprintf(fk, sizeof(fk), "%s/%s.key", dir, name);
	if (core_state_dir(dir, err, sizeof(err)) != CORE_OK ||
	    core_state_write(tc, cert, strlen(cert) + 1, 0644, err, sizeof(err)) != CORE_OK ||
	    core_state_write(tk, key, strlen(key) + 1, 0600, err, sizeof(err)) != CORE_OK) {
		web_json_free(&j);
		unlink(tc);
		return web_api_error(r, MHD_HTTP_INSUFFICIENT_STORAGE, NULL, "not stored: %s", err);
	}
	web_json_free(&j);
	p.cert = tc;
	p.key = tk;
	if (core_tls_check_pair(&p, err, sizeof(err)) != CORE_OK) {
		unlink(tc);
		unlink(tk);
		return web_api_error(r, MHD_HTTP_BAD_REQUEST,
				   strstr(err, "key") == err || strstr(err, "does not belong") ?
				   "key" : "cert", "%s", err);
	}
	replaced = access(fc, F_OK) == 0;
	if (rename(tk, fk) != 0 || rename(tc, fc) != 0) {
		snprintf(err, sizeof(err), "%s", strerror(errno));
		unlink(tc);
		unlink(tk);
		return web_api_error(r, MHD_HTTP_INSUFFICIENT_STORAGE, NULL, "not stored: %s", err);
	}
	web_api_audit(r, r->session->user, replaced ? "certificate replaced" : "certificate added", fc);
	core_log_info("web", "%s %s certificate %s", r->session->user, replaced ? "replaced" : "added", fc);
	if (replaced && core_control_reload(err, sizeof(err)) != CORE_OK)
		return web_api_error(r, MHD_HTTP_CONFLICT, NULL, "stored, but the reload failed: %s",
				   err);
	core_buf_init(&b, 4096);
	web_api_put(&b, "{\"cert\":");
	core_json_str(&b, fc);
	web_api_put(&b, ",\"key\":");
	core_json_str(&b, fk);
	core_buf_printf(&b, ",\"replaced\":%s}\n", replaced ? "true" : "false");
	rc = web_api_reply_json(r, MHD_HTTP_OK, &b, NULL);
	core_buf_free(&b);
	return rc;
}
