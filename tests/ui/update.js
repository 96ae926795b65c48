#!/usr/bin/env node
/*
 * The Update page of a keel box (a qemu guest booted from keel's image),
 * in a real headless Chromium: tests/integration/test_image.py runs it at
 * each step of an update.
 *
 *   node tests/ui/update.js --url https://127.0.0.1:PORT --do STEP [--bundle FILE]
 *                           [--expect JSON] --shot FILE.png
 *
 * STEP is one of
 *   show      log in, open #/update, check what --expect says
 *             ({"running": "a", "versions": ["0.1.0", ...], "last": "failed",
 *               "why": "text", "rollback": true|false})
 *   install   choose --bundle, click Install: the progress bar reaches
 *             100 and the page says the slot now holds the version
 *   rollback  click Roll back: the page says it rolls back
 * Exits 0, or 1 saying what was wrong.
 */
'use strict';

const { chromium } = require('playwright-core');

const arg = (name, dflt) => {
	const i = process.argv.indexOf('--' + name);
	return i > 0 ? process.argv[i + 1] : dflt;
};
const URL = arg('url');
const STEP = arg('do', 'show');
const EXPECT = JSON.parse(arg('expect', '{}'));
const SHOT = arg('shot', null);
const PASSWORD = 'correct horse battery';

async function main() {
	const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
		args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
	const errors = [];
	try {
		const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
		const p = await ctx.newPage();
		p.setDefaultTimeout(30000);
		p.on('pageerror', e => errors.push(e.message));
		p.on('dialog', d => d.accept());
		await p.goto(`${URL}/#/login`);
		await p.getByLabel('User').fill('admin');
		await p.getByLabel('Password').fill(PASSWORD);
		await p.getByRole('button', { name: 'Log in' }).click();
		await p.getByRole('heading', { name: 'Dashboard' }).waitFor();
		await p.goto(`${URL}/#/update`);
		await p.getByRole('heading', { name: 'Update', exact: true }).waitFor();
		await p.locator('#slots tr.current').waitFor();
		const rows = await p.locator('#slots tr').allInnerTexts();
		const current = await p.locator('#slots tr.current').innerText();
		if (EXPECT.running && !current.startsWith(EXPECT.running.toUpperCase() + ' (running)'))
			throw new Error(`the running slot shown: ${current}`);
		for (const v of EXPECT.versions || [])
			if (!rows.some(r => r.includes(v))) throw new Error(`version ${v} not shown: ${rows.join(' | ')}`);
		if (EXPECT.last) {
			const last = await p.locator('#lastupdate').innerText();
			if (!last.includes(EXPECT.last + ':') || (EXPECT.why && !last.includes(EXPECT.why)))
				throw new Error(`the last update shown: ${last}`);
		}
		if (EXPECT.rollback !== undefined) {
			const disabled = await p.locator('#rollback').isDisabled();
			if (disabled === EXPECT.rollback) throw new Error(`Roll back is ${disabled ? 'disabled' : 'enabled'}`);
		}
		if (STEP === 'install') {
			await p.locator('#bundle').setInputFiles(arg('bundle'));
			await p.locator('#install').click();
			await p.locator('#uploadstate', { hasText: 'now holds' }).or(p.locator('#uploadstate', { hasText: 'Refused' }))
				.waitFor({ timeout: 300000 });
			const said = await p.locator('#uploadstate').innerText();
			const value = await p.locator('#uploadbar').evaluate(e => e.value);
			if (!said.includes('now holds') || value !== 100) throw new Error(`after the upload: ${said} (bar at ${value})`);
			console.log(said);
		} else if (STEP === 'rollback') {
			const [r] = await Promise.all([
				p.waitForResponse(x => x.url().endsWith('/api/v1/commands/update.rollback')),
				p.locator('#rollback').click(),
			]);
			if (r.status() !== 202) throw new Error('roll back answered ' + r.status());
		}
		if (SHOT) await p.screenshot({ path: SHOT, fullPage: true });
		if (errors.length) throw new Error('script errors on the page: ' + errors.join('; '));
	} finally {
		await browser.close();
	}
}

main().then(() => process.exit(0), e => { console.error('update page: ' + e.message); process.exit(1); });
