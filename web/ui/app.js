/* keel's admin UI: a small single-page app over the JSON API (/api/v1).
 * No framework and no innerHTML with data: every text goes in through
 * textContent. The server's Content-Security-Policy allows only this file. */
'use strict';

const S = { user: null, csrf: '', status: null, samples: [], page: null, timers: [] };
const $ = (sel, el) => (el || document).querySelector(sel);

/* ---- elements ---------------------------------------------------------------------------- */

/* A header row; a name starting with '#' heads a column of numbers, which
 * are right-aligned, so it is right-aligned too. */
function heads(...names) {
	return h('tr', {}, names.map(n => n.startsWith('#') ? h('th', { class: 'num', text: n.slice(1) }) : h('th', { text: n })));
}

function h(tag, attrs, ...kids) {
	const el = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (v === null || v === undefined || v === false) continue;
		if (k === 'text') el.textContent = v;
		else if (k === 'class') el.className = v;
		else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
		else if (k === 'value') el.value = v;
		else if (k === 'checked') el.checked = !!v;
		else el.setAttribute(k, v === true ? '' : v);
	}
	for (const kid of kids.flat(Infinity)) {
		if (kid === null || kid === undefined || kid === false) continue;
		el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
	}
	return el;
}

function svg(tag, attrs, ...kids) {
	const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (k === 'text') el.textContent = v;
		else el.setAttribute(k, v);
	}
	for (const kid of kids.flat()) if (kid) el.append(kid);
	return el;
}

function pill(state) { return h('span', { class: 'pill ' + state, text: state }); }
function panel(title, ...kids) { return h('section', { class: 'panel' }, title ? h('h2', { text: title }) : null, kids); }

function toast(msg) {
	const t = $('#toast');
	t.textContent = msg;
	t.hidden = false;
	clearTimeout(toast.timer);
	toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}

function fmtTime(ms) {
	if (!ms) return '';
	const d = new Date(Number(ms));
	return d.toLocaleString(undefined, { hour12: false });
}
function fmtNum(n, digits) {
	if (n === null || n === undefined || !isFinite(n)) return '–';
	if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + 'M';
	if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + 'k';
	return n.toFixed(digits === undefined ? (Math.abs(n) < 10 && n % 1 ? 1 : 0) : digits);
}
function fmtUptime(s) {
	const d = Math.floor(s / 86400), hh = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
	return d ? `${d}d ${hh}h` : hh ? `${hh}h ${m}m` : `${m}m ${Math.floor(s % 60)}s`;
}

/* ---- the API ------------------------------------------------------------------------------ */

async function api(method, path, body, type) {
	const opt = { method, credentials: 'same-origin', headers: {} };
	if (method !== 'GET') opt.headers['X-CSRF-Token'] = S.csrf;
	if (body !== undefined) {
		opt.headers['Content-Type'] = type || 'application/json';
		opt.body = typeof body === 'string' ? body : JSON.stringify(body);
	}
	let r;
	try {
		r = await fetch(path, opt);
	} catch (e) {
		return { ok: false, status: 0, data: { error: 'keel did not answer: ' + e.message } };
	}
	let data = {};
	const ct = r.headers.get('Content-Type') || '';
	if (ct.startsWith('application/json')) data = await r.json().catch(() => ({}));
	else data = { text: await r.text() };
	if (r.status === 401 && !path.endsWith('/login') && !path.endsWith('/setup')) {
		S.user = null;
		/* A late answer of the page just left (a status poll after Log out)
		 * must not draw the login page a second time. */
		if (location.hash !== '#/login') go('#/login');
	}
	return { ok: r.ok, status: r.status, data, headers: r.headers };
}

/* ---- forms: fields named after the config path they edit ------------------------------- */

/* spec: {name, label, type, value, options, help, field, prefix, placeholder, required} */
let fieldIds = 0;

function field(spec) {
	const id = `f-${spec.name}-${++fieldIds}`;
	let input;
	if (spec.type === 'select') {
		input = h('select', { id, name: spec.name },
			spec.options.map(o => h('option', { value: o, text: o, selected: o === spec.value })));
	} else if (spec.type === 'checkbox') {
		input = h('input', { id, name: spec.name, type: 'checkbox', checked: spec.value });
		return h('div', { class: 'field', 'data-field': spec.field, 'data-prefix': spec.prefix },
			h('label', { class: 'inline', for: id }, input, spec.label),
			spec.help ? h('div', { class: 'help', text: spec.help }) : null,
			h('div', { class: 'err' }));
	} else if (spec.type === 'textarea') {
		input = h('textarea', { id, name: spec.name, placeholder: spec.placeholder, value: spec.value });
	} else {
		input = h('input', { id, name: spec.name, type: spec.type || 'text', value: spec.value,
			placeholder: spec.placeholder, autocomplete: spec.autocomplete || 'off' });
	}
	return h('div', { class: 'field', 'data-field': spec.field, 'data-prefix': spec.prefix },
		h('label', { for: id, text: spec.label }), input,
		spec.help ? h('div', { class: 'help', text: spec.help }) : null,
		h('div', { class: 'err' }));
}

function formValues(form) {
	const v = {};
	for (const el of form.querySelectorAll('input, select, textarea')) {
		if (!el.name) continue;
		v[el.name] = el.type === 'checkbox' ? el.checked : el.value.trim();
	}
	return v;
}

function clearErrors(form) {
	for (const e of form.querySelectorAll('.err, .formerr')) e.textContent = '';
	for (const e of form.querySelectorAll('.invalid')) e.classList.remove('invalid');
}

/* Puts each error of an API answer next to the field it names; the rest on top. */
function showErrors(form, data) {
	clearErrors(form);
	const errs = data.errors ? data.errors : [{ field: data.field || '', message: data.error || 'failed' }];
	const top = [];
	for (const e of errs) {
		let box = null, best = -1;
		if (e.field) {	/* the exact field, else the longest prefix */
			for (const f of form.querySelectorAll('[data-field], [data-prefix]')) {
				const exact = f.getAttribute('data-field'), pre = f.getAttribute('data-prefix');
				if (exact && exact === e.field) { box = f; break; }
				if (pre && e.field.startsWith(pre) && pre.length > best) { box = f; best = pre.length; }
			}
		}
		if (box) {
			const msg = $('.err', box);
			msg.textContent = (msg.textContent ? msg.textContent + '; ' : '') + e.message;
			const inp = $('input, select, textarea', box);
			if (inp) inp.classList.add('invalid');
		} else {
			top.push((e.field ? e.field + ': ' : '') + e.message);
		}
	}
	let fe = $('.formerr', form);
	if (!fe) { fe = h('div', { class: 'formerr', role: 'alert' }); form.prepend(fe); }
	fe.textContent = top.join('\n');
	if (!top.length && data.error && !data.errors && !data.field) fe.textContent = data.error;
}

function mkform(fields, submit, onsubmit, extra) {
	const form = h('form', { novalidate: true }, h('div', { class: 'formerr', role: 'alert' }),
		fields, h('div', { class: 'row' }, h('button', { class: 'primary', type: 'submit', text: submit }), extra));
	form.addEventListener('submit', async ev => {
		ev.preventDefault();
		clearErrors(form);
		const btn = $('button[type=submit]', form);
		btn.disabled = true;
		try { await onsubmit(formValues(form), form); } finally { btn.disabled = false; }
	});
	return form;
}

/* Reads the running configuration, lets fn change it, applies it. fn may
 * throw {field, message} for checks made here. */
async function applyChange(form, comment, fn) {
	const cur = await api('GET', '/api/v1/config');
	if (!cur.ok) { if (form) showErrors(form, cur.data); return false; }
	const cfg = cur.data;
	try {
		fn(cfg);
	} catch (e) {
		if (form && e.message) showErrors(form, { field: e.field, error: e.message });
		return false;
	}
	const r = await api('PUT', '/api/v1/config?comment=' + encodeURIComponent(comment), cfg);
	if (!r.ok) {
		if (form) showErrors(form, r.data); else toast(r.data.error || 'not applied');
		return false;
	}
	toast(`Applied: revision ${r.data.revision}`);
	if (r.data.confirm) refreshStatus();
	return true;
}

function need(v, fieldName, what) {
	if (!v) { const e = new Error(what + ' is required'); e.field = fieldName; throw e; }
	return v;
}

/* ---- charts (SVG, hand-made) ------------------------------------------------------------------ */

/* series: [{name, color, points: [[t, v]...]}]; opt: {fmt, min, max, height} */
function lineChart(series, opt) {
	opt = opt || {};
	const W = 600, H = opt.height || 200, L = 44, R = 8, T = 8, B = 20;
	const all = series.flatMap(s => s.points);
	const el = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img' });
	el.setAttribute('aria-label', series.map(s => s.name).join(', '));
	if (!all.length) {
		el.append(svg('text', { x: W / 2 - 30, y: H / 2, text: 'no data yet' }));
		return h('div', {}, el);
	}
	const t0 = opt.from || Math.min(...all.map(p => p[0])), t1 = opt.to || Math.max(...all.map(p => p[0]));
	let y0 = opt.min !== undefined ? opt.min : Math.min(...all.map(p => p[1]));
	let y1 = opt.max !== undefined ? opt.max : Math.max(...all.map(p => p[1]));
	if (y1 <= y0) y1 = y0 + 1;
	const x = t => L + (W - L - R) * (t1 > t0 ? (t - t0) / (t1 - t0) : 1);
	const y = v => T + (H - T - B) * (1 - (v - y0) / (y1 - y0));
	const fmt = opt.fmt || (v => fmtNum(v));
	for (const v of [y0, (y0 + y1) / 2, y1]) {
		el.append(svg('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
		el.append(svg('text', { x: 2, y: y(v) + 3, text: fmt(v) }));
	}
	const tf = t => new Date(t).toLocaleTimeString(undefined, { hour12: false, hour: '2-digit', minute: '2-digit' });
	el.append(svg('text', { x: L, y: H - 4, text: tf(t0) }));
	el.append(svg('text', { x: W - R - 30, y: H - 4, text: tf(t1) }));
	for (const s of series) {
		if (!s.points.length) continue;
		const d = s.points.map((p, i) => (i ? 'L' : 'M') + x(p[0]).toFixed(1) + ' ' + y(p[1]).toFixed(1)).join(' ');
		el.append(svg('path', { d, fill: 'none', stroke: s.color, 'stroke-width': 1.8, 'vector-effect': 'non-scaling-stroke' }));
	}
	const legend = h('div', { class: 'legend' }, series.map(s => {
		const last = s.points.length ? s.points[s.points.length - 1][1] : null;
		const i = h('i');
		i.style.background = s.color;
		return h('span', {}, i, `${s.name}: ${last === null ? '–' : fmt(last)}`);
	}));
	return h('div', {}, el, legend);
}

/* Uptime as bars: points [[t, probes, failed]]; red where probes failed. */
function uptimeBars(points, from, to) {
	const W = 600, H = 40;
	const el = svg('svg', { class: 'chart bars', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none' });
	const n = Math.max(points.length, 1), bw = W / Math.max(n, 60);
	points.forEach(p => {
		const t = (p[0] - from) / Math.max(to - from, 1);
		const up = p[1] ? (p[1] - p[2]) / p[1] : 0;
		el.append(svg('rect', { x: (t * W).toFixed(1), y: 2, width: Math.max(bw - 1, 1).toFixed(1), height: H - 4,
			fill: up >= 1 ? '#2da44e' : up > 0.5 ? '#d4a72c' : '#cf222e' }));
	});
	return el;
}

/* ---- status polling: live figures for the dashboard ------------------------------------------ */

/* The proxy's part of the status (its provider's object, or nothing yet). */
function proxyOf(st) {
	return (st && st.proxy) || { routes: [], servers: [], latency_bounds_ms: [], active: 0 };
}

/* A server's last health check: "2 s ago · 200 in 3 ms", or why it failed. */
function lastCheck(s, now) {
	if (!s.last_check) return s.checks ? '' : 'no checks';
	const ago = Math.max(0, Math.round((now - s.last_check) / 1000));
	const when = ago < 60 ? `${ago} s ago` : ago < 3600 ? `${Math.round(ago / 60)} min ago` : fmtTime(s.last_check);
	if (!s.last_check_ok) return `${when} · failed: ${s.check_error}`;
	return `${when} · ${s.last_check_status ? s.last_check_status : 'connected'} in ${s.last_check_ms} ms`;
}

function totals(st) {
	const t = { t: Date.now(), req: 0, resp: 0, err: 0, lat: null };
	for (const r of proxyOf(st).routes || []) {
		t.req += r.requests;
		t.resp += r.responses.reduce((a, b) => a + b, 0);
		t.err += r.responses[4];
		if (!t.lat) t.lat = r.latency.slice(); else r.latency.forEach((c, i) => { t.lat[i] += c; });
	}
	return t;
}

function quantile(hist, bounds, q) {
	const n = hist.reduce((a, b) => a + b, 0);
	if (!n) return null;
	let acc = 0;
	for (let i = 0; i < hist.length; i++) {
		const lo = i ? bounds[i - 1] : 0, hi = i < bounds.length ? bounds[i] : bounds[bounds.length - 1] * 2;
		if (acc + hist[i] >= q * n) return lo + (hi - lo) * ((q * n - acc) / hist[i]);
		acc += hist[i];
	}
	return bounds[bounds.length - 1];
}

async function refreshStatus() {
	const r = await api('GET', '/api/v1/status');
	if (!r.ok) return null;
	const st = r.data, cur = totals(st), prev = S.last;
	S.status = st;
	S.last = cur;
	$('#node').textContent = st.node + ' · rev ' + st.revision;
	if (prev && cur.t > prev.t && cur.req >= prev.req) {
		const dt = (cur.t - prev.t) / 1000, dr = cur.resp - prev.resp;
		const dh = cur.lat && prev.lat ? cur.lat.map((c, i) => c - prev.lat[i]) : [];
		S.samples.push({ t: cur.t, rps: (cur.req - prev.req) / dt,
			err: dr > 0 ? 100 * (cur.err - prev.err) / dr : 0,
			p50: quantile(dh, proxyOf(st).latency_bounds_ms || [], 0.5),
			p99: quantile(dh, proxyOf(st).latency_bounds_ms || [], 0.99) });
		if (S.samples.length > 180) S.samples.shift();
	}
	showConfirm(st.confirm);
	return st;
}

function showConfirm(c) {
	const b = $('#banner');
	if (!c) { b.hidden = true; b.textContent = ''; return; }
	b.hidden = false;
	b.replaceChildren(
		h('span', { text: `Revision ${c.revision} changed how keel is reached (listeners, TLS or the admin address). ` +
			`It is reverted to revision ${c.revert_to} in ${c.seconds} s unless you confirm it.` }),
		h('button', { class: 'primary', id: 'confirm', type: 'button', text: 'Keep this change', onclick: async () => {
			const r = await api('POST', '/api/v1/config/confirm', {});
			toast(r.ok ? 'Change confirmed' : r.data.error);
			refreshStatus();
		} }));
}

function every(ms, fn) {
	fn();
	S.timers.push(setInterval(fn, ms));
}

/* ---- pages -------------------------------------------------------------------------------- */

const pages = {};

pages['/'] = async main => {
	main.append(h('h1', { text: 'Dashboard' }));
	const cards = h('div', { class: 'cards' }), charts = h('div', { class: 'grid' });
	const servers = h('div', { class: 'scroll' }), alerts = h('div'), redis = h('div', { class: 'scroll' });
	const redisPanel = panel('Redis (shared sessions)', redis);
	const storage = h('div', { class: 'scroll' }), storagePanel = panel('Shared storage', storage);
	const procs = h('div', { class: 'scroll' }), procsPanel = panel('Processes', procs);
	const ha = h('div', { class: 'scroll' }), haPanel = panel('High availability', ha);
	haPanel.hidden = true;
	redisPanel.hidden = storagePanel.hidden = procsPanel.hidden = true;
	main.append(cards, charts, panel('Servers', servers), haPanel, redisPanel, storagePanel, procsPanel, panel('Recent alerts', alerts));
	const cfg = (await api('GET', '/api/v1/config')).data;
	const flags = {};
	for (const [u, up] of Object.entries(cfg.upstreams || {}))
		for (const s of up.servers) flags[u + '/' + s.address] = s;
	every(2000, async () => {
		const st = await refreshStatus();
		if (!st) return;
		const last = S.samples[S.samples.length - 1] || {}, px = proxyOf(st);
		const up = (px.servers || []).filter(s => s.state === 'up').length;
		cards.replaceChildren(...[
			['Requests/s', fmtNum(last.rps)], ['p50 latency', last.p50 === null || last.p50 === undefined ? '–' : fmtNum(last.p50, 1) + ' ms'],
			['p99 latency', last.p99 === null || last.p99 === undefined ? '–' : fmtNum(last.p99, 1) + ' ms'],
			['5xx rate', fmtNum(last.err, 2) + ' %'], ['Servers up', `${up} / ${(px.servers || []).length}`],
			['Connections', px.active], ['Uptime', fmtUptime(st.uptime_s)], ['Version', st.version],
		].map(([k, v]) => h('div', { class: 'card' }, h('div', { class: 'k', text: k }), h('div', { class: 'v', text: v }))));
		const pts = key => S.samples.filter(s => s[key] !== null).map(s => [s.t, s[key]]);
		charts.replaceChildren(
			panel('Requests per second', lineChart([{ name: 'req/s', color: '#1f6feb', points: pts('rps') }], { min: 0 })),
			panel('Latency (ms)', lineChart([{ name: 'p50', color: '#2da44e', points: pts('p50') },
				{ name: 'p99', color: '#bf8700', points: pts('p99') }], { min: 0, fmt: v => fmtNum(v, 1) })),
			panel('Error rate (5xx %)', lineChart([{ name: '5xx', color: '#cf222e', points: pts('err') }], { min: 0, fmt: v => fmtNum(v, 1) })));
		servers.replaceChildren(h('table', { id: 'servers' },
			heads('Upstream', 'Server', 'State', '#Active', '#Requests', '#Failures', 'Last check'),
			(px.servers || []).map(s => {
				const f = flags[s.upstream + '/' + s.address] || {};
				const state = f.down ? 'maintenance' : f.drain ? 'drain' : s.state;
				return h('tr', {}, h('td', { text: s.upstream }), h('td', { class: 'mono', text: s.address }),
					h('td', {}, pill(state)), h('td', { class: 'num', text: s.active }),
					h('td', { class: 'num', text: s.requests }), h('td', { class: 'num', text: s.failures }),
					h('td', { class: 'muted', text: lastCheck(s, st.time) }));
			})));
		redisPanel.hidden = !st.redis;
		if (st.redis) redis.replaceChildren(...redisView(st.redis));
		storagePanel.hidden = !st.storage;
		if (st.storage) storage.replaceChildren(storageView(st.storage));
		haPanel.hidden = !st.ha && !st.cluster;
		if (st.ha || st.cluster) ha.replaceChildren(...haView(st.ha, st.cluster));
		procsPanel.hidden = !st.supervise;
		if (st.supervise) procs.replaceChildren(...processView(st.supervise, st.watchdog));
	});
	every(10000, async () => {
		const m = await api('GET', '/api/v1/monitors');
		if (m.ok) alerts.replaceChildren(alertTable(m.data.alerts.slice(0, 8)));
	});
};

/* The Redis master, its replicas' lag, the Sentinels and the front. */
function redisView(r) {
	const t = r.topology, out = [];
	const master = t.master ? h('span', { class: 'mono', text: t.master }) : h('span', {}, pill('down'), ' ' + (t.last_error || 'no master yet'));
	out.push(h('p', {}, h('strong', { text: 'Master: ' }), master,
		t.mode === 'sentinel' ? ` (Sentinel, “${t.master_name}”)` : ' (static nodes, by ROLE)',
		t.since ? ` · since ${t.since.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}` : '',
		` · failovers: ${t.failovers}`, t.last_failover ? ` · last ${t.last_failover.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}, clients back ${t.last_switch_to_ready_ms} ms after the switch` : ''));
	const rows = [];
	if (t.master) rows.push(h('tr', {}, h('td', { class: 'mono', text: t.master }), h('td', {}, pill('master')), h('td', { class: 'num', text: t.offset }), h('td', { class: 'num', text: '–' })));
	for (const x of t.replicas) rows.push(h('tr', {}, h('td', { class: 'mono', text: x.address }), h('td', {}, pill('replica')), h('td', { class: 'num', text: x.offset }), h('td', { class: 'num', text: x.lag_bytes + ' B' })));
	for (const n of t.nodes) if (n.role !== 'master' && n.role !== 'replica') rows.push(h('tr', {}, h('td', { class: 'mono', text: n.address }), h('td', {}, pill('down')), h('td', { class: 'muted', text: n.error }), h('td')));
	out.push(h('table', {}, heads('Node', 'Role', '#Offset', '#Lag'), rows));
	if (t.sentinels.length)
		out.push(h('p', {}, h('strong', { text: 'Sentinels: ' }), t.sentinels.map(x => h('span', { class: 'mono' }, x.address + ' ', pill(x.answered ? 'up' : 'down'), x.subscribed ? ' (subscribed) ' : ' '))));
	if (r.front)
		out.push(h('p', { class: 'muted', text: `Front: ${r.front.clients} clients now, ${r.front.connections} accepted, ${r.front.dropped_at_failover} moved at failovers, ${r.front.bad_commands} refused for protocol errors.` }));
	return out;
}

/* This gateway's VRRP router and the cluster's configuration, with the
 * choice an admin makes when two gateways were changed apart. */
function haView(v, c) {
	const out = [];
	if (v) {
		out.push(h('p', { id: 'vrrp' }, h('strong', { text: 'VRRP: ' }), pill(v.role),
			` vrid ${v.vrid} on ${v.interface}, priority ${v.priority}`,
			v.advertised_priority !== v.priority ? ` (advertising ${v.advertised_priority})` : '',
			' · addresses ', h('span', { class: 'mono', text: v.addresses.join(', ') }),
			v.master && v.role !== 'master' ? ` · master ${v.master}` : '',
			` · ${v.transitions} changes of role`,
			v.healthy ? '' : h('span', {}, ' · ', pill('faulty'), ' ' + v.fault)));
	}
	if (!c) return out;
	out.push(h('p', { id: 'cluster' }, h('strong', { text: 'Cluster: ' }), `“${c.name}”, this gateway is ${c.node}, `,
		pill(c.state), ` generation ${c.generation} (${c.revision})`, c.shared ? '' : ' · Redis is away: changes wait'));
	if (c.peers.length)
		out.push(h('table', { id: 'peers' }, heads('Gateway', 'State', '#Generation', 'Last change', ''),
			c.peers.map(g => h('tr', {}, h('td', { text: g.node }), h('td', {}, pill(g.state)),
				h('td', { class: 'num', text: g.generation }),
				h('td', { class: 'muted', text: g.error || `${g.author}: ${g.comment}` }),
				h('td', {}, g.state === 'diverged' ? h('button', {
					text: `Keep ${g.node}'s`, onclick: () => resolveCluster(g.node) }) : null)))));
	if (c.state === 'conflict')
		out.push(h('p', {}, 'The gateways were changed apart, and neither change is applied on the other. Keep one: ',
			h('button', { text: `Keep this gateway's (${c.node})`, onclick: () => resolveCluster(c.node) })));
	return out;
}

async function resolveCluster(node) {
	if (!confirm(`Keep ${node}'s configuration on every gateway of the cluster?`)) return;
	const r = await api('POST', '/api/v1/cluster/resolve', { keep: node });
	toast(r.ok ? `${node}'s configuration is kept` : r.data.error);
}

/* keel's processes as their keepers see them, and the hardware watchdog. */
function processView(sv, wd) {
	const out = [h('table', { id: 'processes' }, heads('Process', 'State', '#PID', '#Up', '#Restarts', 'Last exit'),
		sv.parts.map(p => h('tr', {}, h('td', { text: p.name }),
			h('td', {}, pill(p.state === 'running' ? 'up' : p.state), p.state === 'restarting' && p.next_start_ms ? ` in ${fmtNum(p.next_start_ms)} ms` : ''),
			h('td', { class: 'num', text: p.pid || '–' }), h('td', { class: 'num', text: p.state === 'running' ? fmtUptime(p.uptime_s) : '–' }),
			h('td', { class: 'num', text: p.restarts }), h('td', { class: 'muted', text: p.last_exit || '' }))))];
	out.push(h('p', { class: 'muted', text: `${sv.supervised ? 'The master has a supervisor. ' : ''}A process is restarted when it exits or makes no progress for ${fmtNum(sv.progress_limit_ms / 1000)} s; after ${sv.restarts} restarts within ${fmtNum(sv.window_s / 60, 1)} min it is left down${sv.escalation === 'reboot' ? ' and the box is reset' : ''}.` }));
	if (sv.escalated) out.push(h('p', {}, pill('failed'), ` ${sv.escalated}: the box is being reset.`));
	if (wd) {
		const state = !wd.armed ? 'not armed' : wd.pinging ? 'pinging' : 'not pinging';
		out.push(h('p', { id: 'watchdog' }, h('strong', { text: 'Watchdog: ' }), h('span', { class: 'mono', text: wd.device }),
			` ${wd.identity ? '(' + wd.identity + ') ' : ''}`, pill(wd.pinging ? 'ok' : 'down'), ` ${state}`,
			wd.armed ? `, timeout ${wd.timeout_s} s` : '', wd.why ? ` · ${wd.why}` : '',
			wd.last_reset_by_watchdog ? ' · the last reset was by the watchdog' : ''));
	}
	return out;
}

/* Each mount: the server in use, its state and why, free space. */
function storageView(s) {
	const gib = b => b === undefined ? '–' : fmtNum(b / 1073741824, 1) + ' GiB';
	const where = m => !m.managed ? '– (watch only)' : m.path + (m.mounted ? '' : ' (not mounted)');
	const detail = m => m.state === 'healthy' ? '' : [m.managed ? m.reason : '']
		.concat(m.servers.filter(x => x.state !== 'healthy').map(x => `${x.address}: ${x.reason || x.state}`))
		.filter(Boolean).join('; ');
	return h('table', { id: 'storage' }, heads('Mount', 'Export', 'Server', 'State', '#Latency', '#Free', 'Mounted at', 'Detail'),
		s.mounts.map(m => h('tr', {}, h('td', { text: m.name }),
			h('td', { class: 'mono', text: m.type === 'glusterfs' ? 'volume ' + m.volume : m.export }),
			h('td', { class: 'mono', text: m.server || m.servers.map(x => x.address).join(', ') }),
			h('td', {}, pill(m.state)), h('td', { class: 'num', text: m.server ? m.latency_ms + ' ms' : '–' }),
			h('td', { class: 'num', text: gib(m.free_bytes) }),
			h('td', { class: 'mono', text: where(m) }),
			h('td', { class: 'muted', text: detail(m) }))));
}

function alertTable(list) {
	if (!list.length) return h('p', { class: 'muted', text: 'No alerts.' });
	return h('table', {}, h('tr', {}, ['Time', 'Event', 'Subject', 'Detail'].map(t => h('th', { text: t }))),
		list.map(a => h('tr', {}, h('td', { text: fmtTime(a.time) }), h('td', {}, pill(a.event)),
			h('td', { text: a.subject }), h('td', { text: a.detail }))));
}

/* Apps and routes */
pages['/routes'] = async main => {
	const cfg = (await api('GET', '/api/v1/config')).data;
	const ups = Object.keys(cfg.upstreams || {});
	main.append(h('h1', { text: 'Apps and routes' }));
	const list = h('table', {}, h('tr', {}, ['Hosts', 'Path', 'Upstream', 'Rewrite', 'HTTPS', ''].map(t => h('th', { text: t }))));
	cfg.routes.forEach((r, i) => list.append(h('tr', {},
		h('td', { text: r.hosts.length ? r.hosts.join(', ') : 'any' }), h('td', { class: 'mono', text: r.path }),
		h('td', { text: r.upstream || (r.static && r.static.mount ? `files: ${r.static.mount} ${r.static.root}` : '') }), h('td', { text: r.rewrite }),
		h('td', { text: (r.https_redirect ? 'redirect ' : '') + (r.hsts !== '0ms' ? 'HSTS' : '') }),
		h('td', {}, h('button', { type: 'button', text: 'Edit', onclick: () => edit(i) }), ' ',
			h('button', { type: 'button', class: 'danger', text: 'Remove', onclick: async () => {
				if (!confirm(`Remove the route ${r.path}?`)) return;
				if (await applyChange(null, `removed route ${r.path}`, c => c.routes.splice(i, 1))) render();
			} })))));
	const formBox = h('div');
	main.append(panel('Routes', h('div', { class: 'scroll' }, list)), panel('', formBox));
	function edit(i) {
		const r = i === undefined ? { hosts: [], path: '/', upstream: ups[0] || '', rewrite: 'keep', https_redirect: false, hsts: '0ms', upstream_header: false, read_timeout: '1m', max_body: '1M' } : cfg.routes[i];
		const idx = i === undefined ? cfg.routes.length : i, p = `routes[${idx}].`;
		formBox.replaceChildren(h('h2', { text: i === undefined ? 'Add a route' : `Edit route ${r.path}` }), mkform(h('div', { class: 'fields' },
			field({ name: 'hosts', label: 'Host names', value: r.hosts.join(', '), prefix: p + 'hosts', help: 'Comma-separated; empty: any host' }),
			field({ name: 'path', label: 'Path prefix', value: r.path, field: p + 'path' }),
			field({ name: 'upstream', label: 'Upstream', type: 'select', options: ups, value: r.upstream, field: p + 'upstream' }),
			field({ name: 'rewrite', label: 'Rewrite', value: r.rewrite, field: p + 'rewrite', help: 'keep, strip, or a new prefix' }),
			field({ name: 'read_timeout', label: 'Read timeout', value: r.read_timeout, field: p + 'read_timeout' }),
			field({ name: 'max_body', label: 'Largest body', value: r.max_body, field: p + 'max_body' }),
			field({ name: 'hsts', label: 'HSTS max-age', value: r.hsts, field: p + 'hsts', help: '0 sends none' }),
			field({ name: 'https_redirect', label: 'Redirect HTTP to HTTPS', type: 'checkbox', value: r.https_redirect, field: p + 'https_redirect' }),
			field({ name: 'upstream_header', label: 'Add X-Keel-Upstream', type: 'checkbox', value: r.upstream_header, field: p + 'upstream_header' })),
		i === undefined ? 'Add route' : 'Save', async (v, form) => {
			const ok = await applyChange(form, `${i === undefined ? 'added' : 'changed'} route ${v.path}`, c => {
				const nr = Object.assign({}, i === undefined ? {} : c.routes[i], {
					hosts: v.hosts ? v.hosts.split(',').map(s => s.trim()).filter(Boolean) : [],
					path: v.path, upstream: r.static && r.static.mount ? '' : v.upstream, rewrite: v.rewrite, read_timeout: v.read_timeout,
					max_body: v.max_body, hsts: v.hsts, https_redirect: v.https_redirect, upstream_header: v.upstream_header });
				if (i === undefined) c.routes.push(nr); else c.routes[i] = nr;
			});
			if (ok) render();
		}, i === undefined ? null : h('button', { type: 'button', text: 'Cancel', onclick: () => edit() })));
	}
	edit();
};

/* Shared storage: each mount with its state, remount and switch, and a
 * mount added from the list of what a server exports. */
pages['/storage'] = async main => {
	const cfg = (await api('GET', '/api/v1/config')).data;
	const st = await refreshStatus();
	const mounts = (st && st.storage && st.storage.mounts) || [];
	const gib = b => b === undefined ? '–' : fmtNum(b / 1073741824, 1) + ' GiB';
	const command = async (name, body, done) => {
		const r = await api('POST', '/api/v1/commands/' + name, body);
		toast(r.ok ? done : r.data.error);
		render();
	};
	main.append(h('h1', { text: 'Shared storage' }));
	const rows = mounts.map(m => {
		const others = m.servers.map(x => x.address).filter(a => a !== m.server);
		const pickServer = h('select', { 'aria-label': `server for ${m.name}` }, others.map(a => h('option', { value: a, text: a })));
		const detail = m.state !== 'healthy' ? `${m.reason} (since ${fmtTime(Date.parse(m.since))})` :
			m.last_incident ? `last incident ${fmtTime(Date.parse(m.last_incident.at))}: ${m.last_incident.reason}` : '';
		return h('tr', { 'data-mount': m.name }, h('td', { text: m.name }),
			h('td', { class: 'mono', text: m.type === 'glusterfs' ? 'volume ' + m.volume : m.export }),
			h('td', { class: 'mono', text: m.server || m.servers.map(x => x.address).join(', ') }),
			h('td', {}, pill(m.state)), h('td', { class: 'num', text: m.server ? m.latency_ms + ' ms' : '–' }),
			h('td', { class: 'num', text: gib(m.free_bytes) }),
			h('td', { class: 'mono', text: m.managed ? m.path + (m.mounted ? '' : ' (not mounted)') : '– (watch only)' }),
			h('td', { class: 'muted', text: detail }),
			h('td', {}, m.managed ? h('button', { type: 'button', text: 'Remount', onclick: () => {
				if (confirm(`Unmount ${m.path} lazily and mount it again?`))
					command('storage.remount', { target: m.name }, `${m.name}: remounting`);
			} }) : null,
			m.managed && m.type === 'nfs' && m.servers.length > 1 && others.length ? h('span', {}, ' ', pickServer, ' ', h('button', { type: 'button', text: 'Switch', onclick: () => {
				if (confirm(`Move ${m.path} to ${pickServer.value}?`))
					command('storage.switch', { target: m.name, arg: pickServer.value }, `${m.name}: moving to ${pickServer.value}`);
			} })) : null, ' ',
			h('button', { type: 'button', class: 'danger', text: 'Remove', onclick: async () => {
				if (!confirm(`Remove the mount ${m.name}? keel unmounts what it mounted.`)) return;
				if (await applyChange(null, `removed mount ${m.name}`, c => { delete c.storage.mounts[m.name]; })) render();
			} })));
	});
	main.append(panel('Mounts', mounts.length ? h('div', { class: 'scroll' }, h('table', { id: 'mounts' },
		heads('Mount', 'Export', 'Server', 'State', '#Latency', '#Free', 'Mounted at', 'Detail', ''), rows)) :
		h('p', { class: 'muted', text: 'No shared storage yet: add a mount below.' })));

	/* Adding: the servers first, then what the first one exports. */
	const exportBox = h('div', { class: 'field' }, h('label', { text: 'Export' }),
		h('input', { name: 'export', type: 'text', placeholder: '/export', autocomplete: 'off' }),
		h('div', { class: 'help', id: 'export-help', text: 'List the exports to pick one, or type it' }), h('div', { class: 'err' }));
	const listBtn = h('button', { type: 'button', text: 'List exports', onclick: async () => {
		const first = (form.querySelector('[name=servers]').value.split(',')[0] || '').trim();
		const help = $('.help', exportBox);
		if (!first) { help.textContent = 'Give a server first'; return; }
		help.textContent = `Asking ${first}…`;
		const r = await api('POST', '/api/v1/commands/storage.exports', { arg: first });
		if (!r.ok) { help.textContent = r.data.error; return; }
		if (!r.data.exports.length) { help.textContent = `${first} exports nothing`; return; }
		exportBox.querySelector('[name=export]').replaceWith(h('select', { name: 'export', id: 'export-list' },
			r.data.exports.map(e => h('option', { value: e.path, text: e.path + (e.groups.length ? ` (${e.groups.join(', ')})` : '') }))));
		help.textContent = `${r.data.exports.length} export${r.data.exports.length === 1 ? '' : 's'} on ${first}${r.data.cut ? ' (the first ones only: the list is long)' : ''}`;
	} });
	const form = mkform(h('div', { class: 'fields' },
		field({ name: 'name', label: 'Name', placeholder: 'share', help: 'Letters, digits, - _ .' }),
		field({ name: 'type', label: 'Type', type: 'select', options: ['nfs', 'glusterfs'], value: 'nfs' }),
		field({ name: 'servers', label: 'Servers', placeholder: '10.0.0.7, 10.0.0.8', help: 'IP addresses, primary first' }),
		exportBox,
		field({ name: 'volume', label: 'GlusterFS volume', placeholder: 'gv0' }),
		field({ name: 'path', label: 'Mount at', placeholder: '/share', help: 'Empty: watch the servers only' }),
		field({ name: 'options', label: 'Mount options', placeholder: 'keel\'s defaults', help: 'Added to keel\'s defaults' })),
	'Add mount', async (v, f) => {
		const ok = await applyChange(f, `added mount ${v.name}`, c => {
			need(v.name, 'name', 'A name');
			c.storage = c.storage || {};
			c.storage.mounts = c.storage.mounts || {};
			if (c.storage.mounts[v.name]) { const e = new Error(`a mount named ${v.name} exists`); e.field = 'name'; throw e; }
			const m = { type: v.type, servers: v.servers.split(',').map(x => x.trim()).filter(Boolean), path: v.path };
			if (v.type === 'nfs') m.export = v.export; else m.volume = v.volume;
			if (v.options) m.options = v.options;
			c.storage.mounts[v.name] = m;
		});
		if (ok) render();
	}, listBtn);
	main.append(panel('Add a mount', form));
};

/* Upstreams and servers */
pages['/upstreams'] = async main => {
	const cfg = (await api('GET', '/api/v1/config')).data;
	const st = await refreshStatus();
	main.append(h('h1', { text: 'Upstreams and servers' }));
	const live = {};
	for (const s of proxyOf(st).servers || []) live[s.upstream + '/' + s.address] = s;
	for (const [name, up] of Object.entries(cfg.upstreams)) {
		const rows = up.servers.map((s, i) => {
			const l = live[name + '/' + s.address] || {};
			const state = s.down ? 'maintenance' : s.drain ? 'drain' : (l.state || 'new');
			const setState = async body => {
				const r = await api('PUT', `/api/v1/upstreams/${encodeURIComponent(name)}/servers/${encodeURIComponent(s.address)}/state`, body);
				toast(r.ok ? `${s.address}: done` : r.data.error);
				render();
			};
			return h('tr', { 'data-server': s.address }, h('td', { class: 'mono', text: s.address }), h('td', { class: 'num', text: s.weight }),
				h('td', { text: s.backup ? 'backup' : '' }), h('td', {}, pill(state)),
				h('td', { class: 'num', text: l.requests || 0 }), h('td', { class: 'muted', text: l.check_error || '' }),
				h('td', { class: 'row' },
					h('button', { type: 'button', text: s.drain ? 'Undrain' : 'Drain', onclick: () => setState({ drain: !s.drain }) }),
					h('button', { type: 'button', text: s.down ? 'End maintenance' : 'Maintenance', onclick: () => setState({ down: !s.down }) }),
					h('button', { type: 'button', class: 'danger', text: 'Remove', onclick: async () => {
						if (!confirm(`Remove ${s.address} from ${name}?`)) return;
						if (await applyChange(null, `removed server ${name}/${s.address}`, c => c.upstreams[name].servers.splice(i, 1))) render();
					} })));
		});
		const n = up.servers.length, p = `upstreams.${name}.`;
		const addForm = mkform(h('div', { class: 'fields' },
			field({ name: 'address', label: 'Server address', placeholder: '10.0.0.5:8080', field: `${p}servers[${n}].address` }),
			field({ name: 'weight', label: 'Weight', type: 'number', value: '1', field: `${p}servers[${n}].weight` }),
			field({ name: 'max_fails', label: 'Max fails', type: 'number', value: '1', field: `${p}servers[${n}].max_fails` }),
			field({ name: 'backup', label: 'Backup server', type: 'checkbox', value: false, field: `${p}servers[${n}].backup` })),
		'Add server', async (v, form) => {
			const ok = await applyChange(form, `added server ${name}/${v.address}`, c => {
				c.upstreams[name].servers.push({ address: need(v.address, `${p}servers[${n}].address`, 'an address'),
					weight: Number(v.weight) || 1, max_fails: Number(v.max_fails), backup: v.backup });
			});
			if (ok) render();
		});
		addForm.setAttribute('data-upstream', name);
		const hc = up.health;
		const healthForm = mkform(h('div', { class: 'fields' },
			field({ name: 'type', label: 'Active checks', type: 'select', options: ['off', 'http', 'tcp'], value: hc.type, field: p + 'health.type' }),
			field({ name: 'path', label: 'Path', value: hc.path, field: p + 'health.path' }),
			field({ name: 'status', label: 'Passing statuses', value: hc.status, field: p + 'health.status' }),
			field({ name: 'body', label: 'Body must contain', value: hc.body, field: p + 'health.body' }),
			field({ name: 'interval', label: 'Interval', value: hc.interval, field: p + 'health.interval' }),
			field({ name: 'timeout', label: 'Timeout', value: hc.timeout, field: p + 'health.timeout' }),
			field({ name: 'unhealthy', label: 'Fails to mark DOWN', type: 'number', value: hc.unhealthy, field: p + 'health.unhealthy' }),
			field({ name: 'healthy', label: 'Passes to mark UP', type: 'number', value: hc.healthy, field: p + 'health.healthy' })),
		'Save health check', async (v, form) => {
			if (await applyChange(form, `health check of ${name}`, c => {
				Object.assign(c.upstreams[name].health, v, { healthy: Number(v.healthy), unhealthy: Number(v.unhealthy) });
			})) render();
		});
		const balForm = mkform(h('div', { class: 'fields' },
			field({ name: 'balance', label: 'Balancing', type: 'select', options: ['round_robin', 'least_conn', 'ip_hash', 'p2c', 'cookie'], value: up.balance, field: p + 'balance' }),
			field({ name: 'all_down', label: 'When all are down', type: 'select', options: ['fail_closed', 'fail_open'], value: up.all_down, field: p + 'all_down' }),
			field({ name: 'slow_start', label: 'Slow start', value: up.slow_start, field: p + 'slow_start' })),
		'Save', async (v, form) => {
			if (await applyChange(form, `balancing of ${name}`, c => Object.assign(c.upstreams[name], v))) render();
		});
		const ut = up.tls;
		const tlsForm = mkform(h('div', { class: 'fields' },
			field({ name: 'enabled', label: 'HTTPS to the servers', type: 'checkbox', value: ut.enabled, field: p + 'tls.enabled' }),
			field({ name: 'verify', label: 'Verify their certificates', type: 'checkbox', value: ut.verify, field: p + 'tls.verify' }),
			field({ name: 'ca_file', label: 'Trusted CA file', value: ut.ca_file, field: p + 'tls.ca_file' }),
			field({ name: 'server_name', label: 'Server name', value: ut.server_name, field: p + 'tls.server_name', help: 'Empty: each server\'s IP address' })),
		'Save', async (v, form) => {
			if (await applyChange(form, `HTTPS to ${name}`, c => Object.assign(c.upstreams[name].tls, v))) render();
		});
		main.append(h('section', { class: 'panel', 'data-upstream': name }, h('h2', { text: name }),
			h('div', { class: 'scroll' }, h('table', {}, heads('Server', '#Weight', '', 'State', '#Requests', 'Last error', ''), rows)),
			h('h3', { text: 'Add a server' }), addForm, h('h3', { text: 'Health check' }), healthForm,
			h('h3', { text: 'Balancing' }), balForm, h('h3', { text: 'HTTPS to the servers' }), tlsForm));
	}
	const n = Object.keys(cfg.upstreams).length;
	main.append(panel('Add an upstream', mkform(h('div', { class: 'fields' },
		field({ name: 'name', label: 'Name', placeholder: 'app_c', prefix: 'upstreams.' }),
		field({ name: 'servers', label: 'Servers', placeholder: '10.0.0.5:8080, 10.0.0.6:8080', help: 'Comma-separated addresses' })),
	'Add upstream', async (v, form) => {
		if (await applyChange(form, `added upstream ${v.name}`, c => {
			need(v.name, 'upstreams.', 'a name');
			if (c.upstreams[v.name]) throw Object.assign(new Error(`${v.name} exists`), { field: 'upstreams.' });
			c.upstreams[v.name] = { servers: v.servers.split(',').map(s => s.trim()).filter(Boolean).map(a => ({ address: a })) };
		})) render();
	})));
	void n;
};

/* Health checks and monitors */
pages['/monitors'] = async main => {
	main.append(h('h1', { text: 'Health and monitors' }));
	const m = await api('GET', '/api/v1/monitors');
	const cfg = (await api('GET', '/api/v1/config')).data;
	const table = h('table', {}, heads('Monitor', 'State', '#Probes', '#Failed', '#Uptime', '#Last', 'Last error'));
	const detail = h('div');
	for (const x of (m.data.monitors || [])) {
		table.append(h('tr', {}, h('td', {}, h('button', { type: 'button', class: 'link', text: x.name, onclick: () => show(x.name, 3600) })),
			h('td', {}, pill(x.incident ? 'alert' : x.up ? 'up' : 'down')), h('td', { class: 'num', text: x.probes }),
			h('td', { class: 'num', text: x.failed }),
			h('td', { class: 'num', text: x.probes ? (100 * (x.probes - x.failed) / x.probes).toFixed(2) + ' %' : '–' }),
			h('td', { class: 'num', text: x.last_ms + ' ms' }), h('td', { class: 'muted', text: x.last_error })));
	}
	main.append(panel('Monitors', h('div', { class: 'scroll' }, table)), detail);
	async function show(name, range) {
		const r = await api('GET', `/api/v1/monitors/history?name=${encodeURIComponent(name)}&range=${range}&points=120`);
		if (!r.ok) { detail.replaceChildren(panel(name, h('p', { class: 'err', text: r.data.error }))); return; }
		const pts = r.data.points, probes = pts.reduce((a, p) => a + p[1], 0), failed = pts.reduce((a, p) => a + p[2], 0);
		detail.replaceChildren(panel(name,
			h('div', { class: 'row' }, [['1 hour', 3600], ['24 hours', 86400], ['7 days', 7 * 86400], ['30 days', 30 * 86400]].map(([t, s]) =>
				h('button', { type: 'button', class: s === range ? 'primary' : '', text: t, onclick: () => show(name, s) }))),
			h('h3', { text: `Uptime: ${probes ? (100 * (probes - failed) / probes).toFixed(3) + ' %' : 'no probes'} (${probes} probes, ${failed} failed)` }),
			uptimeBars(pts, r.data.from, r.data.to),
			h('h3', { text: 'Response time (ms)' }),
			lineChart([{ name: 'average', color: '#1f6feb', points: pts.map(p => [p[0], p[3]]) },
				{ name: 'max', color: '#bf8700', points: pts.map(p => [p[0], p[4]]) }], { min: 0, from: r.data.from, to: r.data.to })));
	}
	if ((m.data.monitors || []).length) show(m.data.monitors[0].name, 3600);
	const mc = cfg.monitors;
	main.append(panel('Add a monitor', mkform(h('div', { class: 'fields' },
		field({ name: 'name', label: 'Name', placeholder: 'login page', prefix: 'monitors.list.' }),
		field({ name: 'url', label: 'URL', placeholder: 'http://10.0.0.5:8000/app_a/login', help: 'An IP address or localhost' }),
		field({ name: 'status', label: 'Passing statuses', value: '200-399' }),
		field({ name: 'interval', label: 'Interval', value: '30s' })),
	'Add monitor', async (v, form) => {
		const p = `monitors.list.${v.name}.`;
		for (const k of ['url', 'status', 'interval']) $(`[name=${k}]`, form).closest('.field').setAttribute('data-field', p + k);
		if (await applyChange(form, `added monitor ${v.name}`, c => {
			need(v.name, 'monitors.list.', 'a name');
			c.monitors.list[v.name] = { url: v.url, status: v.status, interval: v.interval };
		})) render();
	})), panel('Automatic monitors', mkform(h('div', { class: 'fields' },
		field({ name: 'routes', label: 'Probe every route through the front door', type: 'checkbox', value: mc.routes, field: 'monitors.routes' }),
		field({ name: 'servers', label: 'Probe every server directly', type: 'checkbox', value: mc.servers, field: 'monitors.servers' }),
		field({ name: 'interval', label: 'Interval', value: mc.interval, field: 'monitors.interval' })),
	'Save', async (v, form) => {
		if (await applyChange(form, 'automatic monitors', c => Object.assign(c.monitors, v))) render();
	})));
	for (const [name] of Object.entries(mc.list || {}))
		main.append(h('div', { class: 'row' }, h('span', { text: `Operator monitor “${name}”` }),
			h('button', { type: 'button', class: 'danger', text: 'Remove', onclick: async () => {
				if (await applyChange(null, `removed monitor ${name}`, c => { delete c.monitors.list[name]; })) render();
			} })));
};

/* Alerts and channels */
pages['/alerts'] = async main => {
	main.append(h('h1', { text: 'Alerts and channels' }));
	const m = (await api('GET', '/api/v1/monitors')).data;
	const cfg = (await api('GET', '/api/v1/config')).data, a = cfg.alerts;
	main.append(panel('Recent alerts', alertTable(m.alerts || []),
		h('div', { class: 'row' }, h('button', { type: 'button', id: 'test-alert', text: 'Send a test alert', onclick: async () => {
			const r = await api('POST', '/api/v1/alerts/test', {});
			toast(r.ok ? 'Test alert sent to every channel' : r.data.error);
		} }), h('span', { class: 'muted', text: `${m.webhooks} webhook(s), e-mail ${m.email ? 'on' : 'off'}; ${m.sent_this_hour} sent this hour, ${m.delivery_failures} delivery failures` }))));
	const hooks = h('table', {}, h('tr', {}, ['Webhook', 'Signed', ''].map(t => h('th', { text: t }))),
		a.webhooks.map((w, i) => h('tr', {}, h('td', { class: 'mono', text: w.url }), h('td', { text: w.secret ? 'yes' : 'no' }),
			h('td', {}, h('button', { type: 'button', class: 'danger', text: 'Remove', onclick: async () => {
				if (await applyChange(null, 'removed a webhook', c => c.alerts.webhooks.splice(i, 1))) render();
			} })))));
	const n = a.webhooks.length;
	main.append(panel('Webhooks', hooks, h('h3', { text: 'Add a webhook' }), mkform(h('div', { class: 'fields' },
		field({ name: 'url', label: 'URL', placeholder: 'http://10.0.0.9:9000/keel', field: `alerts.webhooks[${n}].url` }),
		field({ name: 'secret', label: 'HMAC secret', type: 'password', field: `alerts.webhooks[${n}].secret`, help: 'Optional; signs each body' })),
	'Add webhook', async (v, form) => {
		if (await applyChange(form, 'added a webhook', c => c.alerts.webhooks.push({ url: v.url, secret: v.secret }))) render();
	})));
	const e = a.email;
	main.append(panel('E-mail', mkform(h('div', { class: 'fields' },
		field({ name: 'to', label: 'Recipients', value: e.to.join(', '), prefix: 'alerts.email.to', help: 'Comma-separated; none: no e-mail' }),
		field({ name: 'server', label: 'SMTP server', value: e.server, field: 'alerts.email.server' }),
		field({ name: 'tls', label: 'TLS', type: 'select', options: ['starttls', 'none'], value: e.tls, field: 'alerts.email.tls' }),
		field({ name: 'from', label: 'From', value: e.from, field: 'alerts.email.from' }),
		field({ name: 'user', label: 'User', value: e.user, field: 'alerts.email.user' }),
		field({ name: 'password', label: 'Password', type: 'password', value: e.password, field: 'alerts.email.password' })),
	'Save e-mail', async (v, form) => {
		if (await applyChange(form, 'alert e-mail', c => Object.assign(c.alerts.email, v,
			{ to: v.to ? v.to.split(',').map(s => s.trim()).filter(Boolean) : [] }))) render();
	})));
	main.append(panel('When to alert', mkform(h('div', { class: 'fields' },
		field({ name: 'failures', label: 'Failures', type: 'number', value: a.failures, field: 'alerts.failures' }),
		field({ name: 'window', label: 'Within', value: a.window, field: 'alerts.window' }),
		field({ name: 'recover', label: 'Passes to recover', type: 'number', value: a.recover, field: 'alerts.recover' }),
		field({ name: 'max_per_hour', label: 'Most per hour', type: 'number', value: a.max_per_hour, field: 'alerts.max_per_hour' })),
	'Save', async (v, form) => {
		if (await applyChange(form, 'alert thresholds', c => Object.assign(c.alerts, { failures: Number(v.failures),
			window: v.window, recover: Number(v.recover), max_per_hour: Number(v.max_per_hour) }))) render();
	})));
};

/* TLS certificates and listeners */
pages['/tls'] = async main => {
	main.append(h('h1', { text: 'TLS certificates' }));
	const certs = (await api('GET', '/api/v1/certificates')).data.certificates || [];
	const cfg = (await api('GET', '/api/v1/config')).data;
	main.append(panel('In use', h('div', { class: 'scroll' }, h('table', {},
		h('tr', {}, ['Used by', 'Subject', 'Names', 'Expires', 'SHA-256 fingerprint'].map(t => h('th', { text: t }))),
		certs.map(c => h('tr', {}, h('td', { text: c.used_by }),
			h('td', { text: c.error ? c.error : c.subject + (c.self_signed ? ' (self-signed)' : '') }),
			h('td', { text: c.names || '' }), h('td', { text: c.not_after || '' }),
			h('td', { class: 'mono', text: c.fingerprint || '' })))))));
	main.append(panel('Upload a certificate', mkform(h('div', {},
		field({ name: 'name', label: 'Name', placeholder: 'www.example.com', field: 'name' }),
		field({ name: 'cert', label: 'Certificate chain (PEM)', type: 'textarea', field: 'cert', placeholder: '-----BEGIN CERTIFICATE-----' }),
		field({ name: 'key', label: 'Private key (PEM)', type: 'textarea', field: 'key', placeholder: '-----BEGIN PRIVATE KEY-----' })),
	'Upload', async (v, form) => {
		const r = await api('POST', '/api/v1/certificates', v);
		if (!r.ok) return showErrors(form, r.data);
		toast(r.data.replaced ? 'Replaced and reloaded' : `Stored as ${r.data.cert}`);
		render();
	})));
	const ls = h('table', {}, h('tr', {}, ['Listener', 'HTTPS certificates', 'Oldest TLS', ''].map(t => h('th', { text: t }))),
		cfg.listeners.map((l, i) => h('tr', {}, h('td', { class: 'mono', text: l.address }),
			h('td', { class: 'mono', text: l.tls.certificates.map(c => c.cert).join(', ') || 'plain HTTP' }),
			h('td', { text: l.tls.min_version }),
			h('td', {}, h('button', { type: 'button', class: 'danger', text: 'Remove', onclick: async () => {
				if (confirm(`Stop listening on ${l.address}?`) && await applyChange(null, `removed listener ${l.address}`, c => c.listeners.splice(i, 1))) render();
			} })))));
	const n = cfg.listeners.length;
	main.append(panel('Listeners', ls, h('h3', { text: 'Add a listener' }), mkform(h('div', { class: 'fields' },
		field({ name: 'address', label: 'Address', placeholder: '*:443', field: `listeners[${n}].address` }),
		field({ name: 'cert', label: 'Certificate file', placeholder: '/var/lib/keel/certs/NAME.crt', prefix: `listeners[${n}].tls`, help: 'Empty: plain HTTP' }),
		field({ name: 'key', label: 'Key file', placeholder: '/var/lib/keel/certs/NAME.key' })),
	'Add listener', async (v, form) => {
		if (await applyChange(form, `added listener ${v.address}`, c => c.listeners.push({ address: v.address,
			tls: { certificates: v.cert ? [{ cert: v.cert, key: v.key }] : [] } }))) render();
	})));
	const at = cfg.admin;
	main.append(panel('Admin server', mkform(h('div', { class: 'fields' },
		field({ name: 'listen', label: 'Admin addresses', value: at.listen.join(', '), prefix: 'admin.listen', help: 'A change must be confirmed, or it is reverted' }),
		field({ name: 'min_version', label: 'Oldest TLS', type: 'select', options: ['1.2', '1.3'], value: at.tls.min_version, field: 'admin.tls.min_version' })),
	'Save', async (v, form) => {
		if (await applyChange(form, 'admin server', c => {
			c.admin.listen = v.listen.split(',').map(s => s.trim()).filter(Boolean);
			c.admin.tls.min_version = v.min_version;
		})) render();
	}), S.status && S.status.admin_fingerprint ? h('p', { class: 'muted mono', text: 'This connection\'s certificate: SHA-256 ' + S.status.admin_fingerprint }) : null));
};

/* Revisions */
pages['/revisions'] = async main => {
	main.append(h('h1', { text: 'Revisions' }));
	const r = await api('GET', '/api/v1/revisions?limit=200');
	const revs = Array.isArray(r.data) ? r.data : (r.data.revisions || []);
	const diffBox = h('div');
	const table = h('table', {}, heads('', '', '#Revision', 'Time', 'Author', 'Comment', ''),
		revs.map((v, i) => h('tr', { 'data-rev': v.id },
			h('td', {}, h('input', { type: 'radio', name: 'from', value: v.id, checked: i === 1, 'aria-label': 'from' })),
			h('td', {}, h('input', { type: 'radio', name: 'to', value: v.id, checked: i === 0, 'aria-label': 'to' })),
			h('td', { class: 'num', text: v.id }), h('td', { text: fmtTime(v.created * 1000) }),
			h('td', { text: v.author }), h('td', { text: v.comment }),
			h('td', {}, v.current ? h('span', { class: 'pill ok', text: 'current' }) : h('button', { type: 'button', text: 'Roll back to this', onclick: async () => {
				if (!confirm(`Apply revision ${v.id} again?`)) return;
				const x = await api('POST', `/api/v1/revisions/${v.id}/rollback`, {});
				toast(x.ok ? `Rolled back: now revision ${x.data.revision}` : x.data.error);
				await refreshStatus();
				render();
			} })))));
	const showDiff = async () => {
		const from = $('input[name=from]:checked', table), to = $('input[name=to]:checked', table);
		if (!from || !to) return;
		const d = await api('GET', `/api/v1/revisions/diff?from=${from.value}&to=${to.value}`);
		if (!d.ok) return diffBox.replaceChildren(h('p', { class: 'err', text: d.data.error }));
		const pre = h('pre', { id: 'diff' });
		for (const line of d.data.diff.split('\n'))
			pre.append(h('span', { class: line.startsWith('+') ? 'add' : line.startsWith('-') ? 'del' : '', text: line + '\n' }));
		diffBox.replaceChildren(h('h2', { text: `Changes from revision ${d.data.from} to ${d.data.to}` }), pre);
	};
	table.addEventListener('change', showDiff);
	main.append(panel('History', h('p', { class: 'muted', text: 'Pick two revisions to compare (from, to).' }), h('div', { class: 'scroll' }, table)),
		panel('', diffBox), panel('Export and import',
			h('div', { class: 'row' }, h('button', { type: 'button', text: 'Download YAML', onclick: async () => {
				const y = await api('GET', '/api/v1/config/yaml');
				const a = h('a', { href: URL.createObjectURL(new Blob([y.data.text], { type: 'application/yaml' })), download: 'keel.yaml' });
				a.click();
			} })),
			h('h3', { text: 'Import YAML' }), mkform(field({ name: 'yaml', label: 'keel.yaml', type: 'textarea', field: 'yaml' }), 'Import', async (v, form) => {
				const x = await api('PUT', '/api/v1/config/yaml?comment=' + encodeURIComponent('imported in the UI'), v.yaml, 'application/yaml');
				if (!x.ok) {
					const d = x.data;
					if (d.errors) d.errors = d.errors.map(e => ({ field: '', message: `line ${e.line}: ${e.field ? e.field + ': ' : ''}${e.message}` }));
					return showErrors(form, d);
				}
				toast(`Imported: revision ${x.data.revision}`);
				render();
			})), nginxPanel());
	showDiff();
};

/* The lines of b against a (a longest common subsequence): "  ", "- " or "+ ". */
function lineDiff(a, b) {
	const x = a.split('\n'), y = b.split('\n');
	if (x.length * y.length > 4e6) return y.map(l => '+ ' + l);
	const n = x.length, m = y.length, t = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
	for (let i = n - 1; i >= 0; i--)
		for (let j = m - 1; j >= 0; j--)
			t[i][j] = x[i] === y[j] ? t[i + 1][j + 1] + 1 : Math.max(t[i + 1][j], t[i][j + 1]);
	const out = [];
	let i = 0, j = 0;
	while (i < n || j < m) {
		if (i < n && j < m && x[i] === y[j]) { out.push('  ' + x[i]); i++; j++; }
		else if (j < m && (i === n || t[i][j + 1] >= t[i + 1][j])) out.push('+ ' + y[j++]);
		else out.push('- ' + x[i++]);
	}
	return out;
}

/* Import from nginx: the report of every directive, the configuration as a
 * diff against the running one, and apply as a revision. */
function nginxPanel() {
	const file = h('input', { type: 'file', id: 'nginxconf', accept: '.conf,text/plain' });
	const out = h('div', { id: 'nginx-result' });
	const check = async () => {
		const f = file.files[0];
		if (!f) return out.replaceChildren(h('p', { class: 'err', text: 'Pick an nginx.conf first.' }));
		const x = await api('POST', '/api/v1/import/nginx', await f.text(), 'application/octet-stream');
		if (!x.ok) {
			return out.replaceChildren(h('p', { class: 'err', text: x.data.error || `failed (${x.status})` }),
				x.data.errors ? h('pre', { class: 'err', id: 'nginx-errors', text: x.data.errors.join('\n') }) : null);
		}
		const counts = { mapped: 0, approximated: 0, 'not supported': 0 };
		for (const e of x.data.report) counts[e.verdict]++;
		const pill = { mapped: 'ok', approximated: 'slow', 'not supported': 'down' };
		const report = h('table', { id: 'nginx-report' }, heads('Where', 'Verdict', 'Directive', 'In keel'),
			x.data.report.map(e => h('tr', {}, h('td', { class: 'mono', text: `${e.file}:${e.line}` }),
				h('td', {}, h('span', { class: 'pill ' + pill[e.verdict], text: e.verdict })),
				h('td', { class: 'mono', text: e.directive }), h('td', { text: e.note }))));
		const cur = await api('GET', '/api/v1/config/yaml');
		const pre = h('pre', { id: 'nginx-diff' });
		for (const line of lineDiff(cur.ok ? cur.data.text : '', x.data.config))
			pre.append(h('span', { class: line[0] === '+' ? 'add' : line[0] === '-' ? 'del' : '', text: line + '\n' }));
		const certs = x.data.certificates.length ? h('p', { class: 'err', text: 'Upload these certificates on the Certificates page before applying (names): ' + x.data.certificates.join(', ') }) : null;
		out.replaceChildren(...[h('p', { id: 'nginx-summary', text: `${x.data.report.length} directives: ${counts.mapped} mapped, ${counts.approximated} approximated, ${counts['not supported']} not supported.` }),
			h('div', { class: 'scroll' }, report), h('h3', { text: 'The configuration it becomes' }), pre, certs,
			h('button', { type: 'button', id: 'nginx-apply', text: 'Apply as a revision', onclick: async () => {
				const y = await api('PUT', '/api/v1/config/yaml?comment=' + encodeURIComponent('imported from nginx ' + f.name), x.data.config, 'application/yaml');
				if (!y.ok) return out.append(h('p', { class: 'err', text: y.data.error || 'refused' }));
				toast(`Applied: revision ${y.data.revision}` + (y.data.confirm ? ' (confirm it, or it is reverted)' : ''));
				await refreshStatus();
				render();
			} })].filter(Boolean));
	};
	return panel('Import from nginx', h('p', { class: 'muted', text: 'An nginx.conf becomes keel\'s listeners, upstreams and routes; every directive is reported. Its includes are not read here: for a configuration of several files, run keel import-nginx on the box.' }),
		h('div', { class: 'row' }, h('label', { for: 'nginxconf', text: 'nginx.conf' }), file,
			h('button', { type: 'button', id: 'nginx-check', text: 'Check', onclick: check })), out);
}

/* Logs */
pages['/logs'] = async main => {
	main.append(h('h1', { text: 'Logs' }));
	const pre = h('pre', { id: 'logview' });
	let after = 0, follow = true;
	const tail = h('label', { class: 'inline' }, h('input', { type: 'checkbox', checked: true, onchange: e => { follow = e.target.checked; } }), 'Follow');
	main.append(panel('Live log', h('div', { class: 'row' }, tail), pre));
	every(1500, async () => {
		const r = await api('GET', '/api/v1/logs?after=' + after);
		if (!r.ok) return;
		for (const l of r.data.lines) pre.append(h('span', { class: /\b(error|warn)\b/.test(l.line) ? 'del' : '', text: l.line + '\n' }));
		after = r.data.last;
		while (pre.childNodes.length > 3000) pre.firstChild.remove();
		if (follow) pre.scrollTop = pre.scrollHeight;
	});
	const au = (await api('GET', '/api/v1/audit')).data;
	const list = Array.isArray(au) ? au : au.audit || [];
	main.append(panel('Audit log', h('div', { class: 'scroll' }, h('table', {}, h('tr', {}, ['Time', 'User', 'From', 'Action', 'Detail'].map(t => h('th', { text: t }))),
		list.map(e => h('tr', {}, h('td', { text: fmtTime(e.at * 1000) }), h('td', { text: e.user }), h('td', { class: 'mono', text: e.ip }),
			h('td', { text: e.action }), h('td', { text: e.detail })))))));
};

/* The system: clock, network, processes and their gates, reboot, the kernel log. */
pages['/system'] = async main => {
	main.append(h('h1', { text: 'System' }));
	const clock = h('div'), net = h('div', { class: 'scroll' }), procs = h('div', { class: 'scroll' });
	const klog = h('pre', { id: 'kernellog', hidden: true });
	const reboot = h('button', { type: 'button', class: 'danger', id: 'reboot', text: 'Reboot' });
	const poweroff = h('button', { type: 'button', class: 'danger', id: 'poweroff', text: 'Power off' });
	const down = (name, what) => async () => {
		if (!confirm(`${what} the box now? The apps lose the proxy until it is back.`)) return;
		const r = await api('POST', '/api/v1/commands/' + name, {});
		toast(r.ok ? `${what}: keel is stopping` : r.data.error);
	};
	reboot.onclick = down('system.reboot', 'Reboot');
	poweroff.onclick = down('system.poweroff', 'Power off');
	const note = h('p', { class: 'muted' });
	main.append(panel('Clock', clock), panel('Network', net), panel('Processes', procs),
		panel('Restart', h('div', { class: 'row' }, reboot, poweroff), note),
		panel('Kernel log', h('div', { class: 'row' }, h('button', { type: 'button', id: 'showklog', text: 'Show the kernel log', onclick: async () => {
			const r = await api('POST', '/api/v1/commands/system.kernel_log', {});
			klog.hidden = false;
			klog.textContent = r.ok ? r.data.text : r.data.error;
		} })), klog));
	every(2000, async () => {
		const st = await refreshStatus();
		if (!st || !st.system) return;
		const s = st.system, c = s.clock;
		clock.replaceChildren(h('p', {}, h('strong', { text: 'Time: ' }), s.time.replace('T', ' ').replace(/\.\d+Z$/, ' UTC'), ' · ',
			...(c.servers === 0 ? [h('span', { class: 'muted', text: 'keel does not set this clock (no NTP server in system.ntp or from DHCP)' })] :
				[pill(c.synced ? 'ok' : 'down'), c.synced ? ` set from ${c.server}, ${c.last_sync_s_ago} s ago (offset ${c.offset_ms} ms)` : ` not set from NTP yet: ${c.why || 'waiting for an answer'}`])),
			h('p', {}, h('strong', { text: 'Host name: ' }), s.hostname, s.dns.length ? ` · DNS: ${s.dns.join(', ')}` : ''));
		net.replaceChildren(s.interfaces.length ? h('table', { id: 'interfaces' }, heads('Interface', 'Mode', 'State', 'Address', 'Gateway', '#Lease left', 'Detail'),
			s.interfaces.map(f => h('tr', {}, h('td', { class: 'mono', text: f.name }), h('td', { text: f.mode }),
				h('td', {}, pill(f.state === 'bound' || (f.mode === 'static' && f.link) ? 'up' : f.state === 'missing' || f.state === 'no link' ? 'down' : 'starting'), ' ' + f.state),
				h('td', { class: 'mono', text: f.address.startsWith('/') ? '–' : f.address }), h('td', { class: 'mono', text: f.gateway || '–' }),
				h('td', { class: 'num', text: f.mode === 'dhcp' && f.lease_left_s ? fmtUptime(f.lease_left_s) : '–' }),
				h('td', { class: 'muted', text: f.why })))) :
			h('p', { class: 'muted', text: s.init ? 'No interface found.' : 'keel leaves this host\'s network alone (system.interfaces is empty).' }));
		if (st.supervise) {
			const waiting = st.supervise.waiting ? st.supervise.gates.filter(g => !g.open) : [];
			procs.replaceChildren(...(waiting.length ? [h('p', { id: 'waiting' }, pill('starting'), ' The proxy waits for: ' + waiting.map(g => `${g.gate} (${g.why})`).join('; '))] : []),
				...processView(st.supervise, st.watchdog));
		}
		reboot.disabled = poweroff.disabled = !s.init;
		note.textContent = s.init ? 'keel stops its parts, syncs and unmounts the disks (network mounts are left to the kernel: a dead server cannot hold the reboot up), then restarts the box.' :
			'keel is not this system\'s init (PID 1): reboot the host with its own tools.';
	});
};

/* Update: the two slots, the last update's outcome, a signed bundle
 * uploaded with a progress bar (XMLHttpRequest: fetch has no upload
 * progress), and a manual roll back. */
pages['/update'] = async main => {
	main.append(h('h1', { text: 'Update' }));
	const slots = h('div', { class: 'scroll' }), last = h('div'), keys = h('p', { class: 'muted' });
	const file = h('input', { type: 'file', id: 'bundle', accept: '.bundle,application/octet-stream' });
	const bar = h('progress', { id: 'uploadbar', max: 100, value: 0, hidden: true });
	const said = h('p', { id: 'uploadstate', class: 'muted' });
	const install = h('button', { type: 'button', id: 'install', text: 'Install and reboot' });
	const older = h('input', { type: 'checkbox', id: 'downgrade' });
	const url = h('input', { type: 'url', id: 'bundleurl', placeholder: 'http://10.0.0.9/keel-1.2.0.bundle', size: 48 });
	const fetchit = h('button', { type: 'button', id: 'fetch', text: 'Fetch, install and reboot' });
	fetchit.onclick = async () => {
		if (!url.value) { toast('Give the bundle\'s URL first'); return; }
		if (!confirm(`Fetch ${url.value}, install it into the other slot and reboot into it?`)) return;
		said.className = 'muted';
		said.textContent = 'Fetching (checked as it arrives)…';
		bar.hidden = false;
		bar.removeAttribute('value');
		fetchit.disabled = true;
		const r = await api('POST', '/api/v1/commands/update.fetch', { arg: url.value, target: older.checked ? 'downgrade' : '' });
		fetchit.disabled = false;
		if (r.ok) {
			bar.value = 100;
			said.textContent = `Slot ${r.data.slot} now holds ${r.data.version}: the box reboots into it and commits it once its checks pass.`;
		} else {
			bar.hidden = true;
			said.className = 'del';
			said.textContent = 'Refused: ' + r.data.error;
		}
	};
	const back = h('button', { type: 'button', class: 'danger', id: 'rollback', text: 'Roll back' });
	const off = h('p', { class: 'muted', id: 'updateoff', hidden: true });
	install.onclick = () => {
		const f = file.files[0];
		if (!f) { toast('Choose a bundle file first'); return; }
		if (!confirm(`Install ${f.name} into the other slot and reboot into it? If the new version fails its checks the box comes back on this one by itself.`)) return;
		const x = new XMLHttpRequest();
		x.open('POST', '/api/v1/update' + (older.checked ? '?downgrade=1' : ''));
		x.setRequestHeader('X-CSRF-Token', S.csrf);
		x.setRequestHeader('Content-Type', 'application/octet-stream');
		bar.hidden = false;
		bar.value = 0;
		install.disabled = true;
		x.upload.onprogress = e => {
			if (!e.lengthComputable) return;
			bar.value = Math.round(100 * e.loaded / e.total);
			said.textContent = `Uploading: ${Math.round(e.loaded / 1048576)} of ${Math.round(e.total / 1048576)} MiB (checked as it arrives)`;
		};
		x.onload = () => {
			let d = {};
			try { d = JSON.parse(x.responseText); } catch (e) { d = { error: x.responseText }; }
			install.disabled = false;
			if (x.status === 200) {
				bar.value = 100;
				said.textContent = `Slot ${d.slot} now holds ${d.version}: the box reboots into it and commits it once its checks pass.`;
			} else {
				bar.hidden = true;
				said.textContent = 'Refused: ' + (d.error || x.status);
				said.className = 'del';
			}
		};
		x.onerror = () => { install.disabled = false; said.textContent = 'The upload failed: keel did not answer'; };
		said.className = 'muted';
		x.send(f);
	};
	back.onclick = async () => {
		if (!confirm('Boot the other slot from now on and reboot into it?')) return;
		const r = await api('POST', '/api/v1/commands/update.rollback', {});
		toast(r.ok ? `Rolling back to ${r.data.version}: rebooting` : r.data.error);
	};
	main.append(off, panel('Slots', slots), panel('Last update', last),
		panel('Install an update', h('div', { class: 'row' }, file, install), h('div', { class: 'row' }, url, fetchit),
			h('label', { class: 'inline' }, older, 'Allow an older version than the one running'), bar, said, keys),
		panel('Roll back', h('p', { class: 'muted', text: 'Boots the other slot (the version before) from now on.' }), h('div', { class: 'row' }, back)));
	every(2000, async () => {
		const st = await refreshStatus();
		if (!st || !st.update) return;
		const u = st.update;
		off.hidden = u.supported;
		off.textContent = u.supported ? '' : 'Updates are off: ' + u.why;
		if (bar.hidden) install.disabled = fetchit.disabled = !u.supported;
		if (u.busy && u.expected > 0 && !bar.hidden && fetchit.disabled) bar.value = Math.round(100 * u.received / u.expected);
		slots.replaceChildren(h('table', { id: 'slots' }, heads('Slot', 'Version', 'State', 'Installed', 'Detail'),
			u.slots.map(s => h('tr', { class: s.running ? 'current' : '' }, h('td', { class: 'mono', text: s.slot.toUpperCase() + (s.running ? ' (running)' : '') }),
				h('td', { class: 'mono', text: s.version || '–' }),
				h('td', {}, pill(s.state === 'committed' ? 'ok' : s.state === 'trying' ? 'starting' : s.state === 'bad' ? 'down' : 'unknown'), ' ' + s.state),
				h('td', { text: s.installed ? s.installed.replace('T', ' ').replace('Z', ' UTC') : '–' }),
				h('td', { class: 'muted', text: s.state === 'trying' ? `boot ${s.boots}, ${s.tries_left} tr${s.tries_left === 1 ? 'y' : 'ies'} left` + (u.failing ? ': ' + u.failing : '') : '' })))));
		const l = u.last;
		last.replaceChildren(l ? h('p', { id: 'lastupdate' }, pill(l.state === 'committed' ? 'ok' : l.state === 'trying' ? 'starting' : l.state === 'rolled-back' ? 'unknown' : 'down'),
			` ${l.state}: ${l.version !== '-' ? l.version + ' in slot ' + l.slot.toUpperCase() + ' · ' : ''}${l.why} (${l.when.replace('T', ' ').replace('Z', ' UTC')})`) :
			h('p', { class: 'muted', text: 'No update yet.' }));
		keys.textContent = `Bundles must be signed with a key this keel trusts: ${u.keys.map(k => `${k.id} (${k.name})`).join(', ') || 'none'}. ` +
			`A new version gets ${u.tries} boots and ${u.health_timeout_s} s to pass its checks.`;
		const other = u.slots.find(s => !s.running);
		back.disabled = !u.supported || !other || !other.present || other.state === 'bad' || u.busy;
	});
};

/* Users and password */
pages['/users'] = async main => {
	main.append(h('h1', { text: 'Users' }));
	const u = (await api('GET', '/api/v1/users')).data;
	const list = Array.isArray(u) ? u : u.users || [];
	main.append(panel('Accounts', h('table', {}, h('tr', {}, ['User', 'Created', ''].map(t => h('th', { text: t }))),
		list.map(x => h('tr', {}, h('td', { text: x.name }), h('td', { text: x.created ? fmtTime(x.created * 1000) : '' }),
			h('td', {}, x.name === S.user ? h('span', { class: 'muted', text: 'you' }) : h('button', { type: 'button', class: 'danger', text: 'Remove', onclick: async () => {
				if (!confirm(`Remove ${x.name}?`)) return;
				const r = await api('DELETE', '/api/v1/users/' + encodeURIComponent(x.name));
				toast(r.ok ? `${x.name} removed` : r.data.error);
				render();
			} })))))));
	main.append(panel('Add a user', mkform(h('div', { class: 'fields' },
		field({ name: 'name', label: 'User name', field: 'name' }),
		field({ name: 'password', label: 'Password', type: 'password', field: 'password', autocomplete: 'new-password', help: 'At least 10 characters' })),
	'Add user', async (v, form) => {
		const r = await api('POST', '/api/v1/users', v);
		if (!r.ok) return showErrors(form, r.data);
		toast(`${v.name} added`);
		render();
	})));
	main.append(panel('Change your password', mkform(h('div', { class: 'fields' },
		field({ name: 'current', label: 'Current password', type: 'password', field: 'current', autocomplete: 'current-password' }),
		field({ name: 'password', label: 'New password', type: 'password', field: 'password', autocomplete: 'new-password' }),
		field({ name: 'again', label: 'Again', type: 'password', field: 'again', autocomplete: 'new-password' })),
	'Change password', async (v, form) => {
		if (v.password !== v.again) return showErrors(form, { field: 'again', error: 'the two passwords differ' });
		const r = await api('POST', '/api/v1/password', { current: v.current, password: v.password });
		if (!r.ok) return showErrors(form, r.data);
		toast('Password changed; your other sessions were ended');
	})));
};

/* Login */
pages['/login'] = async main => {
	const setup = (await api('GET', '/api/v1/setup')).data;
	const box = h('div', { class: 'panel login' }, h('h1', { text: 'Log in to keel' }));
	if (setup.setup)
		box.append(h('p', { class: 'muted', text: 'This box has no admin account yet: open the setup link keel printed on its console (…/#/setup?token=…).' }));
	box.append(mkform([
		field({ name: 'user', label: 'User', field: 'user', autocomplete: 'username' }),
		field({ name: 'password', label: 'Password', type: 'password', field: 'password', autocomplete: 'current-password' })],
	'Log in', async (v, form) => {
		const r = await api('POST', '/api/v1/login', v);
		if (!r.ok) {
			const wait = r.headers && r.headers.get('Retry-After');
			return showErrors(form, { error: r.data.error + (wait ? ` (try again in ${wait} s)` : '') });
		}
		S.user = r.data.user;
		S.csrf = r.data.csrf;
		go('#/');
	}));
	main.append(box);
};

/* First boot: account, then the box's name, the first app and alerts */
pages['/setup'] = async (main, q) => {
	const box = h('div', { class: 'panel wide' });
	main.append(box);
	const steps = n => h('div', { class: 'steps' }, ['1. Admin account', '2. This box', '3. First app', '4. Done'].map((t, i) => h('span', { class: i + 1 === n ? 'on' : '', text: t })));
	if (!S.user) {
		box.append(h('h1', { text: 'Set up keel' }), steps(1), mkform([
			field({ name: 'token', label: 'Setup token', value: q.get('token') || '', field: 'token', help: 'Printed on the console and in the log at first start' }),
			field({ name: 'user', label: 'Admin user', value: 'admin', field: 'user' }),
			field({ name: 'password', label: 'Password', type: 'password', field: 'password', autocomplete: 'new-password', help: 'At least 10 characters' }),
			field({ name: 'again', label: 'Password again', type: 'password', field: 'again', autocomplete: 'new-password' })],
		'Create account', async (v, form) => {
			if (v.password !== v.again) return showErrors(form, { field: 'again', error: 'the two passwords differ' });
			const r = await api('POST', '/api/v1/setup', { token: v.token, user: v.user, password: v.password });
			if (!r.ok) return showErrors(form, r.data);
			S.user = r.data.user;
			S.csrf = r.data.csrf;
			render();
		}));
		return;
	}
	const cfg = (await api('GET', '/api/v1/config')).data;
	box.append(h('h1', { text: 'Set up keel' }), steps(2), mkform([
		field({ name: 'node', label: 'Host name of this box', value: cfg.node, field: 'node' }),
		h('h2', { text: 'First app' }),
		h('div', { class: 'fields' },
			field({ name: 'app', label: 'App name', placeholder: 'app_a', prefix: 'upstreams.' }),
			field({ name: 'path', label: 'Path on the front door', value: '/', prefix: 'routes[' }),
			field({ name: 'health', label: 'Health check path', value: '/', prefix: 'health' })),
		field({ name: 'servers', label: 'App servers', placeholder: '10.0.0.11:8080, 10.0.0.12:8080', prefix: 'servers', help: 'Comma-separated addresses' }),
		field({ name: 'listen', label: 'Front door address', value: cfg.listeners.length ? cfg.listeners[0].address : '*:80', prefix: 'listeners' }),
		h('h2', { text: 'Alerts (optional)' }),
		h('div', { class: 'fields' },
			field({ name: 'email', label: 'Alert e-mail', type: 'email', prefix: 'alerts.email.to' }),
			field({ name: 'smtp', label: 'SMTP server', value: cfg.alerts.email.server, field: 'alerts.email.server' }))],
	'Apply', async (v, form) => {
		for (const el of form.querySelectorAll('[data-prefix=servers], [data-prefix=health]'))
			el.setAttribute('data-prefix', `upstreams.${v.app}.${el.getAttribute('data-prefix')}`);
		const ok = await applyChange(form, 'first-boot setup', c => {
			need(v.app, 'upstreams.', 'an app name');
			c.node = v.node;
			c.upstreams[v.app] = Object.assign(c.upstreams[v.app] || {}, {
				servers: need(v.servers, `upstreams.${v.app}.servers`, 'at least one server').split(',').map(s => s.trim()).filter(Boolean).map(a => ({ address: a })),
				health: { type: 'http', path: v.health || '/' } });
			c.routes = c.routes.filter(r => r.path !== v.path || r.hosts.length);
			c.routes.push({ path: v.path || '/', upstream: v.app });
			if (!c.listeners.length || c.listeners[0].address !== v.listen) c.listeners = [{ address: v.listen }];
			if (v.email) { c.alerts.email.to = [v.email]; c.alerts.email.server = v.smtp; }
		});
		if (!ok) return;
		box.replaceChildren(h('h1', { text: 'Set up keel' }), steps(4),
			h('p', { text: `Done: ${v.app} is served at ${v.path} on ${v.listen}.` }),
			h('p', {}, h('a', { href: '#/', class: 'button', text: 'Go to the dashboard' })));
	}, h('a', { href: '#/', text: 'Skip' })));
};

/* ---- routing ----------------------------------------------------------------------------- */

function go(hash) {
	if (location.hash === hash) render(); else location.hash = hash;
}

async function render() {
	for (const t of S.timers) clearInterval(t);
	S.timers = [];
	const raw = location.hash.replace(/^#/, '') || '/';
	const [path, qs] = raw.split('?');
	const q = new URLSearchParams(qs || '');
	if (!S.user && path !== '/login' && path !== '/setup') {
		const s = await api('GET', '/api/v1/session');
		if (!s.ok) return;	/* api() went to the login page */
		S.user = s.data.user;
		S.csrf = s.data.csrf;
	}
	const bare = !S.user || path === '/login' || path === '/setup';
	document.body.classList.toggle('bare', bare);
	$('#nav').hidden = bare;
	$('#logout').hidden = !S.user;
	$('#who').textContent = S.user || '';
	for (const a of document.querySelectorAll('#nav a'))
		a.classList.toggle('on', a.getAttribute('href') === '#' + path);
	$('#nav').classList.remove('open');
	const main = $('#main');
	main.replaceChildren();
	const page = pages[path] || pages['/'];
	S.page = path;
	try {
		await page(main, q);
	} catch (e) {
		main.append(h('p', { class: 'err', text: 'This page failed: ' + e.message }));
	}
	if (S.user && path !== '/' && !bare) refreshStatus();
}

window.addEventListener('hashchange', render);
$('#logout').addEventListener('click', async () => {
	await api('POST', '/api/v1/logout', {});
	S.user = null;
	S.csrf = '';
	go('#/login');
});
$('#menu').addEventListener('click', () => $('#nav').classList.toggle('open'));
setInterval(() => { if (S.user && S.page !== '/') refreshStatus(); }, 5000);
render();
