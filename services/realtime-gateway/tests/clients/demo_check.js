// Opens the gateway's /demo page in Debian's Chromium (playwright-core), connects and
// subscribes through the page, publishes through the HTTP API, and waits until the page shows
// the publication. Usage: node demo_check.js <http base url> <admin key>
const { chromium } = require('playwright-core');

async function main() {
  const [base, key] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
  try {
    const page = await browser.newPage();
    await page.goto(`${base}/demo`);
    await page.fill('#channel', 'product:browser');
    await page.click('#connect');
    await page.waitForSelector('#status[data-state="subscribed"]', { timeout: 10000 });
    const response = await fetch(`${base}/v1/realtime/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ channel: 'product:browser', data: { price: 4200 } }),
    });
    if (!response.ok) throw new Error(`publish failed: ${response.status} ${await response.text()}`);
    await page.waitForSelector('#log li:has-text("4200")', { timeout: 10000 });
    console.log(JSON.stringify({ shown: await page.textContent('#log li') }));
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
