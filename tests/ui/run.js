#!/usr/bin/env node
/*
 * The admin UI in a real headless Chromium, driven by Playwright, against
 * a real keel (HTTPS admin with its self-signed certificate) and real app
 * servers (tests/integration/backend.py) on loopback.
 *
 *   node tests/ui/run.js --keel build/keel --out build/ui --result FILE
 *
 * The tests run in order and share one keel: first-boot wizard, login,
 * every page, add a server and see traffic reach it, TLS upload and the
 * confirm-or-revert banner, rollback, and last (it locks 127.0.0.1 out)
 * the login lockout. Screenshots of each page go to --out.
 */
'use strict';

const { chromium, request } = require('playwright-core');
const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const http = require('http');
const https = require('https');
const net = require('net');
const os = require('os');
const path = require('path');

const arg = (name, dflt) => {
	const i = process.argv.indexOf('--' + name);
	return i > 0 ? process.argv[i + 1] : dflt;
};
const ROOT = path.resolve(__dirname, '../..');
const KEEL = path.resolve(arg('keel', 'build/keel'));
const OUT = path.resolve(arg('out', 'build/ui'));
const RESULT = arg('result', null);
const failures = [];	/* "name: why", written after the counts in RESULT */
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PASSWORD = 'correct horse battery';
const CLUSTER_KEY = 'a secret the gateways share';

const procs = [];
let failed = 0, passed = 0;

function freePort() {
	return new Promise((resolve, reject) => {
		const s = net.createServer();
		s.on('error', reject);
		s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
	});
}

const sleep = ms => new Promise(r => setTimeout(r, ms));

async function until(what, fn, ms) {
	const end = Date.now() + (ms || 15000);
	let last;
	while (Date.now() < end) {
		try { last = await fn(); if (last) return last; } catch (e) { last = e; }
		await sleep(150);
	}
	throw new Error(`timed out waiting for ${what}` + (last instanceof Error ? `: ${last.message}` : ''));
}

/* One request through keel's front door (or any loopback URL). */
function get(url, opts) {
	return new Promise(resolve => {
		const mod = url.startsWith('https') ? https : http;
		const req = mod.get(url, Object.assign({ rejectUnauthorized: false, timeout: 5000, agent: false }, opts || {}), res => {
			let body = '';
			res.on('data', d => { body += d; });
			res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
		});
		req.on('error', e => resolve({ status: 0, body: e.message }));
		req.on('timeout', () => req.destroy(new Error('timeout')));
	});
}

function start(cmd, args, logfile) {
	const out = fs.openSync(logfile, 'w');
	const p = spawn(cmd, args, { stdio: ['ignore', out, out] });
	procs.push(p);
	return p;
}

async function test(name, fn) {
	const t0 = Date.now();
	try {
		await fn();
		passed++;
		console.log(`ok    ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
	} catch (e) {
		failed++;
		failures.push(`${name}: ${String(e.message || e).split('\n')[0].slice(0, 200)}`);
		console.log(`FAIL  ${name}: ${e.stack || e}`);
		if (T.page) await T.page.screenshot({ path: path.join(OUT, `FAILED-${name.replace(/\W+/g, '_')}.png`), fullPage: true }).catch(() => {});
	}
}

const T = {};	/* what the tests share */

async function shot(name) {
	await T.page.waitForTimeout(300);	/* charts drawn, toasts settled */
	await T.page.screenshot({ path: path.join(OUT, name + '.png'), fullPage: true });
}

async function nav(hash, heading) {
	const url = `${T.admin}/${hash}`;
	if (T.page.url() === url) await T.page.reload(); else await T.page.goto(url);
	await T.page.getByRole('heading', { name: heading, exact: true }).first().waitFor();
}

/* Answers from the front door for `ms`: which backends served them. */
async function servedBy(pathname, n) {
	const seen = {};
	for (let i = 0; i < n; i++) {
		const r = await get(`${T.front}${pathname}`);
		if (r.status === 200) {
			const who = JSON.parse(r.body).server;
			seen[who] = (seen[who] || 0) + 1;
		} else seen[r.status] = (seen[r.status] || 0) + 1;
	}
	return seen;
}

async function main() {
	fs.mkdirSync(OUT, { recursive: true });
	for (const f of fs.readdirSync(OUT)) if (f.endsWith('.png')) fs.unlinkSync(path.join(OUT, f));
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-ui-'));
	T.dir = dir;
	const [pa, pb, pc, padmin, pfront, ptls, predis] = await Promise.all([1, 2, 3, 4, 5, 6, 7].map(freePort));
	T.ports = { pa, pb, pc, ptls, predis };
	T.redisArgs = ['--port', predis, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
	T.redis = start('redis-server', T.redisArgs, path.join(dir, 'redis.log'));
	for (const [port, name] of [[pa, 's1'], [pb, 's2'], [pc, 's3']])
		start('python3', [path.join(ROOT, 'tests/integration/backend.py'), '--port', port, '--name', name],
			path.join(dir, name + '.log'));
	fs.writeFileSync(path.join(dir, 'keel.yaml'), [
		'node: fresh-box',
		`state_dir: ${dir}/state`,
		'pid_file: ""',
		`admin: { listen: ["127.0.0.1:${padmin}"], confirm_timeout: 20s }`,
		`listeners: [ { address: "127.0.0.1:${pfront}" } ]`,
		'monitors: { interval: 1s, timeout: 1s }',
		`redis: { nodes: ["127.0.0.1:${predis}"] }`,
		`cluster: { name: ui, key: "${CLUSTER_KEY}" }`,
		/* Nothing exports NFS at 127.0.0.9: the share is shown failed, with why. */
		`storage: { mounts: { share: { servers: ["127.0.0.9"], export: "/export", path: "${path.join(dir, 'share')}", mount_timeout: 1s } } }`,
		''].join('\n'));
	T.log = path.join(dir, 'keel.log');
	T.keel = start(KEEL, ['--supervise', '-c', path.join(dir, 'keel.yaml')], T.log);
	T.admin = `https://127.0.0.1:${padmin}`;
	T.front = `http://127.0.0.1:${pfront}`;
	T.token = await until('the setup URL in the log', () => {
		const m = /#\/setup\?token=([0-9a-f]{32})/.exec(fs.readFileSync(T.log, 'utf8'));
		return m && m[1];
	});
	const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox',
		'--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
	T.browser = browser;
	T.ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 860 } });
	T.page = await T.ctx.newPage();
	T.errors = [];
	T.page.on('pageerror', e => T.errors.push(e.message));
	/* 4xx answers are the API refusing input; a 502 from the export listing is a
	 * server that does not answer, which the form shows. */
	T.page.on('console', m => {
		if (m.type() !== 'error' || /status of 4\d\d/.test(m.text())) return;
		if (/status of 50[24]/.test(m.text()) && /\/api\/v1\/commands\/storage\.exports/.test(m.location().url || '')) return;
		T.errors.push(m.text());
	});
	T.page.on('dialog', d => d.accept());

	await test('first-boot wizard: account, box, first app (with a field error)', async () => {
		const p = T.page;
		await p.goto(`${T.admin}/#/setup?token=${T.token}`);
		await p.getByLabel('Setup token').waitFor();
		if (await p.getByLabel('Setup token').inputValue() !== T.token) throw new Error('token not taken from the URL');
		await shot('01-setup-account');
		await p.getByLabel('Password', { exact: true }).fill(PASSWORD);
		await p.getByLabel('Password again').fill(PASSWORD + 'x');
		await p.getByRole('button', { name: 'Create account' }).click();
		await p.getByText('the two passwords differ').waitFor();
		await p.getByLabel('Password again').fill(PASSWORD);
		await p.getByRole('button', { name: 'Create account' }).click();
		await p.getByLabel('Host name of this box').waitFor({ timeout: 10000 });
		await p.getByLabel('Host name of this box').fill('gw1');
		await p.getByLabel('App name').fill('app_a');
		await p.getByLabel('Path on the front door').fill('/app_a/');
		await p.getByLabel('Health check path').fill('/health');
		await p.getByLabel('App servers').fill('127.0.0.1');	/* no port: refused */
		await p.getByLabel('Alert e-mail').fill('ops@example.com');
		await p.getByRole('button', { name: 'Apply' }).click();
		/* The error sits under the servers field, not in a generic box. */
		const err = p.locator('.field', { has: p.getByLabel('App servers') }).locator('.err');
		await err.filter({ hasText: 'needs a port' }).waitFor();
		await shot('02-setup-field-error');
		await p.getByLabel('App servers').fill(`127.0.0.1:${T.ports.pa}`);
		await p.getByRole('button', { name: 'Apply' }).click();
		await p.getByText('Done: app_a is served at /app_a/').waitFor();
		await shot('03-setup-done');
		const seen = await until('app_a through the front door', async () => {
			const s = await servedBy('/app_a/hello', 4);
			return s.s1 === 4 && s;
		});
		if (!seen.s1) throw new Error('no answer from s1');
	});

	await test('log out, then log in', async () => {
		const p = T.page;
		await p.goto(`${T.admin}/#/`);
		await p.getByRole('button', { name: 'Log out' }).click();
		await p.getByRole('heading', { name: 'Log in to keel' }).waitFor();
		await shot('04-login');
		await p.getByLabel('User').fill('admin');
		await p.getByLabel('Password').fill(PASSWORD);
		await p.getByRole('button', { name: 'Log in' }).click();
		await p.getByRole('heading', { name: 'Dashboard' }).waitFor();
		const cookies = await T.ctx.cookies();
		const c = cookies.find(x => x.name === 'keel_session');
		if (!c || !c.httpOnly || !c.secure || c.sameSite !== 'Strict') throw new Error('session cookie flags: ' + JSON.stringify(c));
	});

	await test('dashboard: live figures and charts from real traffic', async () => {
		const p = T.page;
		const load = (async () => { const end = Date.now() + 7000; while (Date.now() < end) await get(`${T.front}/app_a/x`); })();
		await nav('#/', 'Dashboard');
		await load;
		await until('a req/s figure above 0', async () => {
			const v = await p.locator('.card', { hasText: 'Requests/s' }).locator('.v').textContent();
			return parseFloat(v) > 0;
		});
		await p.locator('.pill.up').first().waitFor();
		if (await p.locator('svg.chart path').count() < 3) throw new Error('charts not drawn');
		/* The Servers table, read by the cell under each header: each
		 * header is aligned as its cells are, the Requests cell is the
		 * server's request count (not the next column's), and Last check
		 * says when and what. */
		await until('a server row with a last check', async () =>
			/ago · \d{3} in \d+ ms/.test(await p.locator('#servers tr').nth(1).textContent()));
		const table = await p.locator('#servers').evaluate(t => {
			const rows = [...t.querySelectorAll('tr')];
			const heads = [...rows[0].querySelectorAll('th')].map(th => ({ text: th.textContent, align: getComputedStyle(th).textAlign }));
			return { heads, rows: rows.slice(1).map(r => [...r.querySelectorAll('td')].map(td => ({ text: td.textContent, align: getComputedStyle(td).textAlign }))) };
		});
		const col = name => table.heads.findIndex(x => x.text.toLowerCase() === name.toLowerCase());
		for (const row of table.rows)
			table.heads.forEach((hd, i) => {
				if (row[i].align !== hd.align)
					throw new Error(`column "${hd.text}": header ${hd.align}, cell "${row[i].text}" ${row[i].align}`);
			});
		const st = await (await p.request.get(`${T.admin}/api/v1/status`)).json();
		let total = 0;
		for (const row of table.rows) {
			const sv = st.proxy.servers.find(s => s.address === row[col('Server')].text);
			if (!sv) throw new Error('no server ' + row[col('Server')].text + ' in the status');
			const shown = parseInt(row[col('Requests')].text, 10);
			if (!(shown <= sv.requests && parseInt(row[col('Failures')].text, 10) <= sv.failures))
				throw new Error(`Requests shows ${shown}, the server has ${sv.requests}`);
			total += shown;
			if (!/^\d+ (s|min) ago · /.test(row[col('Last check')].text))
				throw new Error('Last check shows ' + JSON.stringify(row[col('Last check')].text));
		}
		if (total === 0) throw new Error('no requests shown under Requests');
		/* The shared Redis: its master, verified by ROLE. */
		const redis = p.locator('section.panel', { hasText: 'Redis (shared sessions)' });
		await redis.getByText(`127.0.0.1:${T.ports.predis}`).first().waitFor();
		await redis.locator('.pill.master').waitFor();
		/* Shared storage: the mount, failed, and the server's reason. */
		const storage = p.locator('section.panel', { hasText: 'Shared storage' });
		await storage.locator('#storage .pill.failed').waitFor();
		const detail = await storage.locator('#storage tr').nth(1).innerText();
		if (!/share/.test(detail) || !/127\.0\.0\.9: MOUNT: /.test(detail) || !/\/share \(not mounted\)/.test(detail))
			throw new Error('the storage row shows ' + JSON.stringify(detail));
		/* Processes: a worker killed comes back, with its restart and why. */
		const w1 = st.supervise.parts.find(x => x.name === 'worker 1');
		process.kill(w1.pid, 'SIGKILL');
		const procs = p.locator('section.panel', { hasText: 'Processes' });
		await procs.getByText('The master has a supervisor.').waitFor();
		const w1row = procs.locator('#processes tr', { hasText: 'killed by signal 9 (Killed)' });
		await w1row.waitFor();
		const cells = (await w1row.innerText()).split('\t');
		if (cells[0] !== 'worker 1' || cells[4] !== '1' || cells[2] === String(w1.pid))
			throw new Error('the killed worker\'s row shows ' + JSON.stringify(cells));
		await shot('05-dashboard');
		await p.setViewportSize({ width: 768, height: 1024 });	/* a tablet */
		await shot('05-dashboard-tablet');
		await p.setViewportSize({ width: 1280, height: 860 });
	});

	await test('storage: a mount and its reason, the export list asked, a mount added', async () => {
		const p = T.page;
		await nav('#/storage', 'Shared storage');
		const row = p.locator('#mounts tr[data-mount=share]');
		await row.locator('.pill.failed').waitFor();
		if (!/mount 127\.0\.0\.9:\/export: .* \(since /.test(await row.innerText()))
			throw new Error('the mount row shows ' + JSON.stringify(await row.innerText()));
		await row.getByRole('button', { name: 'Remount' }).waitFor();
		/* Nothing answers on 127.0.0.9: the listing says so next to the field. */
		const form = p.locator('section.panel', { hasText: 'Add a mount' });
		await form.getByLabel('Servers').fill('127.0.0.9');
		await form.getByRole('button', { name: 'List exports' }).click();
		await until('the export listing to fail', async () => /^127\.0\.0\.9/.test(await p.locator('#export-help').innerText()));
		await form.getByLabel('Name').fill('media');
		await form.locator('input[name=export]').fill('/media');
		await form.getByRole('button', { name: 'Add mount' }).click();
		await p.locator('#mounts tr[data-mount=media]').waitFor();
		await shot('05b-storage');
	});

	await test('add a server to an upstream, apply, requests reach it', async () => {
		const p = T.page;
		await nav('#/upstreams', 'Upstreams and servers');
		const sec = p.locator('section[data-upstream=app_a]');
		await sec.getByLabel('Server address').fill(`127.0.0.1:${T.ports.pb}`);
		await sec.getByRole('button', { name: 'Add server' }).click();
		await sec.locator(`tr[data-server="127.0.0.1:${T.ports.pb}"]`).waitFor();
		await until('s2 serving app_a', async () => {
			const s = await servedBy('/app_a/x', 6);
			return s.s1 && s.s2;
		}, 20000);
		await shot('06-upstreams');
		/* Drain from the UI: s2 gets no new clients. */
		await sec.locator(`tr[data-server="127.0.0.1:${T.ports.pb}"]`).getByRole('button', { name: 'Drain' }).click();
		await sec.locator(`tr[data-server="127.0.0.1:${T.ports.pb}"] .pill.drain`).waitFor();
		await until('s2 drained', async () => { const s = await servedBy('/app_a/x', 6); return s.s1 === 6; });
		await sec.locator(`tr[data-server="127.0.0.1:${T.ports.pb}"]`).getByRole('button', { name: 'Undrain' }).click();
		await sec.locator(`tr[data-server="127.0.0.1:${T.ports.pb}"] .pill.drain`).waitFor({ state: 'detached' });
	});

	await test('routes: an invalid path shows its error next to the field', async () => {
		const p = T.page;
		await nav('#/routes', 'Apps and routes');
		await p.getByLabel('Path prefix').fill('app_b');
		await p.getByRole('button', { name: 'Add route' }).click();
		await p.locator('.field', { has: p.getByLabel('Path prefix') }).locator('.err', { hasText: "must start with '/'" }).waitFor();
		await shot('07-routes-error');
		await p.getByLabel('Path prefix').fill('/app_b/');
		await p.getByRole('button', { name: 'Add route' }).click();
		await p.locator('td.mono', { hasText: '/app_b/' }).waitFor();
		await shot('07-routes');
	});

	await test('health and monitors: history charts from stored results', async () => {
		const p = T.page;
		await nav('#/monitors', 'Health and monitors');
		await p.getByText(/Uptime: \d/).waitFor();
		await p.getByRole('button', { name: /^server app_a\// }).first().click();
		await p.getByText(/Uptime: \d/).waitFor();
		if (await p.locator('svg.chart rect').count() < 1) throw new Error('no uptime bars');
		await shot('08-monitors');
	});

	await test('alerts: send a test alert', async () => {
		const p = T.page;
		await nav('#/alerts', 'Alerts and channels');
		await p.getByRole('button', { name: 'Send a test alert' }).click();
		await p.locator('#toast', { hasText: 'Test alert sent' }).waitFor();
		await nav('#/alerts', 'Alerts and channels');
		await p.locator('.pill.test').first().waitFor();
		await shot('09-alerts');
	});

	await test('TLS: upload a certificate, add an HTTPS listener, confirm it in time', async () => {
		const p = T.page;
		const crt = path.join(T.dir, 'up.crt'), key = path.join(T.dir, 'up.key');
		execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
			'-keyout', key, '-out', crt, '-days', '30', '-subj', '/CN=app.example.test',
			'-addext', 'subjectAltName=DNS:app.example.test'], { stdio: 'ignore' });
		await nav('#/tls', 'TLS certificates');
		await p.getByLabel('Name').fill('app');
		await p.getByLabel('Certificate chain (PEM)').fill(fs.readFileSync(crt, 'utf8'));
		await p.getByLabel('Private key (PEM)').fill('-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n');
		await p.getByRole('button', { name: 'Upload' }).click();
		await p.locator('.field', { has: p.getByLabel('Private key (PEM)') }).locator('.err').filter({ hasText: /key/ }).waitFor();
		await p.getByLabel('Private key (PEM)').fill(fs.readFileSync(key, 'utf8'));
		await p.getByRole('button', { name: 'Upload' }).click();
		await p.locator('#toast', { hasText: 'Stored as' }).waitFor();
		const stored = `${T.dir}/state/certs/app`;
		await p.getByLabel('Address', { exact: true }).fill(`127.0.0.1:${T.ports.ptls}`);
		await p.getByLabel('Certificate file').fill(stored + '.crt');
		await p.getByLabel('Key file').fill(stored + '.key');
		await p.getByRole('button', { name: 'Add listener' }).click();
		await p.locator('#banner', { hasText: 'unless you confirm it' }).waitFor();
		await until('HTTPS on the new listener', async () =>
			(await get(`https://127.0.0.1:${T.ports.ptls}/app_a/x`, { servername: 'app.example.test' })).status === 200);
		await shot('10-tls-confirm-banner');
		await p.getByRole('button', { name: 'Keep this change' }).click();
		await p.locator('#banner').waitFor({ state: 'hidden' });
		await nav('#/tls', 'TLS certificates');
		await p.getByText('CN=app.example.test').waitFor();
		await shot('10-tls');
	});

	await test('revisions: diff, then roll back one click', async () => {
		const p = T.page;
		await nav('#/revisions', 'Revisions');
		/* The revision that added s2: roll back to the one before it. */
		const row = p.locator('tr', { hasText: `added server app_a/127.0.0.1:${T.ports.pb}` });
		const id = Number(await row.getAttribute('data-rev'));
		await p.locator(`tr[data-rev="${id - 1}"] input[name=from]`).check();
		await p.locator(`tr[data-rev="${id}"] input[name=to]`).check();
		await p.locator('#diff .add', { hasText: `- address: "127.0.0.1:${T.ports.pb}"` }).waitFor();
		await shot('11-revisions');
		await p.locator(`tr[data-rev="${id - 1}"]`).getByRole('button', { name: 'Roll back to this' }).click();
		await p.locator('#toast', { hasText: 'Rolled back' }).waitFor();
		await until('s2 gone from app_a', async () => { const s = await servedBy('/app_a/x', 6); return s.s1 === 6; });
		const cfg = await p.evaluate(() => fetch('/api/v1/config').then(r => r.json()));
		if (cfg.upstreams.app_a.servers.length !== 1) throw new Error('rollback left ' + JSON.stringify(cfg.upstreams.app_a.servers));
	});

	await test('logs: live tail and audit log', async () => {
		const p = T.page;
		await nav('#/logs', 'Logs');
		await p.locator('#logview', { hasText: 'revision' }).waitFor();
		await p.locator('td', { hasText: 'rollback to revision' }).first().waitFor();
		await shot('12-logs');
	});

	await test('system: clock, network, processes; reboot only as PID 1; the kernel log', async () => {
		const p = T.page;
		await nav('#/system', 'System');
		await p.getByText('keel leaves this host\'s network alone').waitFor();
		await p.locator('section', { hasText: 'Clock' }).getByText('Time: ').waitFor();
		await p.locator('section', { hasText: 'Processes' }).locator('#processes tr', { hasText: 'password hasher' }).waitFor();
		await p.getByText('keel is not this system\'s init (PID 1)').waitFor();
		if (!(await p.locator('#reboot').isDisabled()) || !(await p.locator('#poweroff').isDisabled()))
			throw new Error('reboot and power off are offered on a host keel is not the init of');
		await p.locator('#showklog').click();
		await p.locator('#kernellog:not([hidden])').waitFor();
		if ((await p.locator('#kernellog').innerText()).trim() === '')
			throw new Error('the kernel log is empty');
		await shot('12b-system');
	});

	await test('update: off on a host keel is not the init of, saying so; nothing to click', async () => {
		const p = T.page;
		await nav('#/update', 'Update');
		await p.locator('#updateoff', { hasText: 'Updates are off: keel is not this system\'s init (PID 1)' }).waitFor();
		if (!(await p.locator('#install').isDisabled()) || !(await p.locator('#rollback').isDisabled()) ||
		    !(await p.locator('#fetch').isDisabled()))
			throw new Error('install or roll back is offered where updates are off');
		await p.getByText('Bundles must be signed with a key this keel trusts: ').waitFor();
		await shot('12c-update');
	});

	await test('users: a short password is refused next to the field; add a user', async () => {
		const p = T.page;
		await nav('#/users', 'Users');
		const add = p.locator('section', { hasText: 'Add a user' });
		await add.getByLabel('User name').fill('ops');
		await add.getByLabel('Password').fill('short');
		await add.getByRole('button', { name: 'Add user' }).click();
		await add.locator('.field', { has: p.locator('input[type=password]') }).locator('.err', { hasText: 'must be 10..255' }).waitFor();
		await add.getByLabel('Password').fill('another long password');
		await add.getByRole('button', { name: 'Add user' }).click();
		await p.locator('td', { hasText: /^ops$/ }).waitFor();
		await shot('13-users');
	});

	await test('users: changing the password asks for the current one', async () => {
		const p = T.page;
		const form = p.locator('section', { hasText: 'Change your password' });
		const change = async (current, next) => {
			await form.getByLabel('Current password').fill(current);
			await form.getByLabel('New password').fill(next);
			await form.getByLabel('Again').fill(next);
			await form.getByRole('button', { name: 'Change password' }).click();
			await p.waitForTimeout(100);
			await form.locator('button[type=submit]:not([disabled])').waitFor();
		};
		await change('not the password at all', 'yet another long password');
		await form.locator('.field', { has: p.getByLabel('Current password') }).locator('.err', { hasText: 'current password is wrong' }).waitFor();
		await change(PASSWORD, 'yet another long password');
		await p.getByText('Password changed').first().waitFor();
		await shot('13b-password');
		/* And back, for the tests after this one. */
		await change('yet another long password', PASSWORD);
		const r = await p.evaluate(async pw => (await fetch('/api/v1/login', { method: 'POST',
			headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user: 'admin', password: pw }) })).status, PASSWORD);
		if (r !== 200) throw new Error('the password was not changed back: ' + r);
	});

	await test('cluster: gateways changed apart are shown in conflict, and one is kept from the dashboard', async () => {
		const p = T.page;
		const [padm2, pfr2] = await Promise.all([freePort(), freePort()]);
		const dir2 = path.join(T.dir, 'other');
		fs.mkdirSync(dir2);
		fs.writeFileSync(path.join(dir2, 'keel.yaml'), [
			'node: other-box', `state_dir: ${dir2}/state`, 'pid_file: ""',
			`admin: { listen: ["127.0.0.1:${padm2}"], tls: { enabled: false } }`,
			`listeners: [ { address: "127.0.0.1:${pfr2}" } ]`,
			`redis: { nodes: ["127.0.0.1:${T.ports.predis}"] }`,
			`cluster: { name: ui, key: "${CLUSTER_KEY}" }`, ''].join('\n'));
		const log2 = path.join(dir2, 'keel.log');
		start(KEEL, ['-c', path.join(dir2, 'keel.yaml')], log2);
		/* A new gateway takes what this one runs. (Loaded anew: the test
		 * before logged in again behind the page's back.) */
		await nav('#/', 'Dashboard');
		await nav('#/', 'Dashboard');
		/* The rollback of the revisions test waits to be confirmed: a revert
		 * in the middle would be a change of its own. */
		await p.evaluate(() => api('POST', '/api/v1/config/confirm'));
		const ha = p.locator('section.panel', { hasText: 'High availability' });
		await ha.locator('#peers tr', { hasText: 'other-box' }).locator('.pill.same').waitFor({ timeout: 15000 });
		await ha.locator('#cluster .pill', { hasText: 'in sync' }).waitFor();
		const token = await until('other-box\'s setup token', () => {
			const m = /#\/setup\?token=([0-9a-f]{32})/.exec(fs.readFileSync(log2, 'utf8'));
			return m && m[1];
		});
		const rq = await request.newContext({ baseURL: `http://127.0.0.1:${padm2}` });
		const su = await rq.post('/api/v1/setup', { data: { token, user: 'admin', password: PASSWORD } });
		if (su.status() !== 200) throw new Error('other-box setup: ' + su.status());
		const csrf = (await su.json()).csrf;
		/* Redis goes away, and each gateway is changed on its own. */
		T.redis.kill('SIGKILL');
		await until('Redis gone', () => T.redis.exitCode !== null || T.redis.signalCode !== null);
		const mine = await p.evaluate(async () => {
			const c = await api('GET', '/api/v1/config');
			c.data.log.level = 'debug';
			return api('PUT', '/api/v1/config?comment=debug-here', c.data);
		});
		if (!mine.ok) throw new Error('the change on this gateway: ' + mine.status + ' ' + JSON.stringify(mine.data));
		const cur = await (await rq.get('/api/v1/config')).json();
		cur.log.level = 'warn';
		const put = await rq.put('/api/v1/config?comment=warn-there', { data: cur, headers: { 'X-CSRF-Token': csrf } });
		if (put.status() !== 200) throw new Error('the change on other-box: ' + put.status() + ' ' + await put.text());
		T.redis = start('redis-server', T.redisArgs, path.join(T.dir, 'redis2.log'));
		await ha.locator('#cluster .pill.conflict').waitFor({ timeout: 15000 });
		const row = ha.locator('#peers tr', { hasText: 'other-box' });
		await row.locator('.pill.diverged').waitFor();
		if (!/warn-there/.test(await row.innerText())) throw new Error('the peer row shows ' + await row.innerText());
		await shot('15-cluster-conflict');
		/* Nothing was merged: each still runs its own change. */
		const here = await p.evaluate(() => api('GET', '/api/v1/config'));
		if (here.data.log.level !== 'debug') throw new Error('this gateway runs log level ' + here.data.log.level);
		await row.getByRole('button', { name: "Keep other-box's" }).click();
		await ha.locator('#cluster .pill', { hasText: 'in sync' }).waitFor({ timeout: 10000 });
		await row.locator('.pill.same').waitFor();
		const after = await p.evaluate(() => api('GET', '/api/v1/config'));
		if (after.data.log.level !== 'warn') throw new Error('after keeping other-box\'s: log level ' + after.data.log.level);
		await rq.dispose();
	});

	await test('import from nginx: the report, the diff, then apply as a revision', async () => {
		const p = T.page;
		await nav('#/revisions', 'Revisions');
		const conf = [
			'include mime.types;',
			'http {',
			'    upstream app_a {',
			`        server 127.0.0.1:${T.ports.pa} max_fails=30 fail_timeout=20s;`,
			`        server 127.0.0.1:${T.ports.pc} max_fails=30 fail_timeout=20s;`,
			'    }',
			'    server {',
			`        listen ${T.front.replace('http://', '')};`,
			'        gzip on;',
			'        location ^~ /app_a/ { proxy_pass http://app_a; proxy_set_header Host $host; }',
			'        location = /ping { return 200 "pong"; }',
			'    }',
			'}', ''].join('\n');
		/* A bad one first: its error with the line, nothing applied. */
		await p.locator('#nginxconf').setInputFiles({ name: 'bad.conf', mimeType: 'text/plain', buffer: Buffer.from('http {\n  proxy_pas x;\n}\n') });
		await p.locator('#nginx-check').click();
		await p.locator('#nginx-errors', { hasText: 'nginx.conf:2: unknown directive "proxy_pas"' }).waitFor();
		await p.locator('#nginxconf').setInputFiles({ name: 'nginx.conf', mimeType: 'text/plain', buffer: Buffer.from(conf) });
		await p.locator('#nginx-check').click();
		await p.locator('#nginx-summary', { hasText: 'directives' }).waitFor();
		await p.locator('#nginx-report tr', { hasText: 'gzip on' }).locator('.pill', { hasText: 'not supported' }).waitFor();
		await p.locator('#nginx-report tr', { hasText: 'nginx.conf:1' }).locator('.pill', { hasText: 'not supported' }).waitFor();
		await p.locator('#nginx-diff .add', { hasText: 'return_body: "pong"' }).waitFor();
		await p.locator('#nginx-diff .add', { hasText: `127.0.0.1:${T.ports.pc}` }).waitFor();
		await shot('19-import-nginx');
		await p.locator('#nginx-apply').click();
		await p.locator('#toast', { hasText: 'Applied: revision' }).waitFor();
		await until('the imported routes', async () => (await get(`${T.front}/ping`)).body === 'pong');
		await until('app_a on s1 and s3', async () => { const s = await servedBy('/app_a/x', 6); return (s.s1 || 0) + (s.s3 || 0) === 6; });
	});

	await test('no script errors on any page', async () => {
		if (T.errors.length) throw new Error(T.errors.join('\n'));
	});

	await test('failed logins lock out, with the wait shown', async () => {
		const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
		const p = await ctx.newPage();
		T.page = p;
		await p.goto(`${T.admin}/#/login`);
		/* Each attempt waits for its own answer: the error line of the one
		 * before is still shown, so waiting for text would pass at once. */
		const attempt = async password => {
			await p.getByLabel('User').fill('admin');
			await p.getByLabel('Password').fill(password);
			const [r] = await Promise.all([
				p.waitForResponse(x => x.url().endsWith('/api/v1/login') && x.request().method() === 'POST'),
				p.getByRole('button', { name: 'Log in' }).click(),
			]);
			if (r.status() !== 200)	/* a refusal leaves the form, ready again */
				await p.locator('button[type=submit]:not([disabled])').waitFor();
			return r;
		};
		/* Four failures are free; from the fifth each one locks for longer
		 * (1 s, 2 s, 4 s): fail seven times, waiting out each lock, so the
		 * last lock outlasts the next attempt whatever the machine's speed. */
		const codes = [];
		let fails = 0;
		while (fails < 7) {
			const r = await attempt('wrong password ' + codes.length);
			codes.push(r.status());
			if (r.status() === 401)
				fails++;
			else if (r.status() === 429 && fails >= 5)
				await sleep(1000 * Number(r.headers()['retry-after'] || 1));
			else
				throw new Error('login answers: ' + codes.join(' '));
			if (codes.length > 20) throw new Error('no lockout after: ' + codes.join(' '));
		}
		/* The right password is refused too while locked, with the wait. */
		const right = await attempt(PASSWORD);
		if (right.status() !== 429 || !right.headers()['retry-after'])
			throw new Error(`the right password while locked: ${right.status()} (before: ${codes.join(' ')})`);
		await p.locator('.formerr', { hasText: /try again in \d+ s/ }).waitFor();
		await shot('14-lockout');
		if (await p.getByRole('heading', { name: 'Dashboard' }).count()) throw new Error('logged in while locked out');
		const log = fs.readFileSync(T.log, 'utf8');
		if (!/locked|lockout/i.test(log)) throw new Error('lockout not logged');
		await ctx.close();
	});

	await browser.close();
}

function finish(code) {
	for (const p of procs) try { p.kill('SIGTERM'); } catch (e) { /* gone */ }
	console.log(`${passed} passed, ${failed} failed`);
	if (RESULT) {
		fs.mkdirSync(path.dirname(RESULT), { recursive: true });
		fs.writeFileSync(RESULT, `${passed} ${failed}\n` + failures.map(f => f + '\n').join(''));
	}
	process.exit(code);
}

setTimeout(() => { console.log('FAIL  the UI tests did not finish in 5 minutes'); failed++; finish(1); }, 300000).unref();
main().then(() => finish(failed ? 1 : 0), e => { console.log('FAIL  ' + (e.stack || e)); failed++; finish(1); });
