// CLI: top-1 of a running service on a data set's test split, each image uploaded on its own to /classify.
//   npm run eval:served -- --url http://127.0.0.1:8080 --data fashion-mnist [--model NAME] [--limit N] [--concurrency 16]

import { parseArgs } from 'node:util';
import { openDataSource } from '../src/data/resolve.js';
import { servedAccuracy } from '../src/probe/classify.js';
import { num } from '../src/util/cli.js';

const USAGE = 'usage: npm run eval:served -- --url URL --data SET [--model NAME] [--limit N] [--concurrency N]';
const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    data: { type: 'string' },
    model: { type: 'string' },
    limit: { type: 'string' },
    concurrency: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});
if (values.help || !values.url || !values.data) {
  console.error(values.help ? USAGE : `--url and --data are required\n${USAGE}`);
  process.exit(values.help ? 0 : 2);
}
let limit: number | undefined;
let concurrency: number | undefined;
try {
  limit = values.limit === undefined ? undefined : num('limit', values.limit, 0, { integer: true, min: 1 });
  concurrency = num('concurrency', values.concurrency, 16, { integer: true, min: 1 });
} catch (err) {
  console.error(`${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
const src = await openDataSource(values.data);
const t0 = performance.now();
const r = await servedAccuracy(src.test, {
  url: values.url,
  model: values.model,
  limit,
  concurrency,
  onProgress: (done, total) => {
    if (done % 500 === 0 || done === total) process.stderr.write(`\r${done}/${total} images`);
  },
});
const seconds = (performance.now() - t0) / 1000;
process.stderr.write('\n');
console.log(
  `${src.name} ${src.test.split}: top-1 ${(100 * r.top1).toFixed(2)}% (${r.correct}/${r.images}) through ${values.url}/classify, ` +
    `${(r.images / seconds).toFixed(0)} images/s, ${r.retries} retries`,
);
