// CLI: top-1 of a running service on a data set's test split, each image uploaded on its own to /classify.
//   npm run eval:served -- --url http://127.0.0.1:8080 --data fashion-mnist [--model NAME] [--limit N] [--concurrency 16]

import { openDataSource } from '../src/data/resolve.js';
import { servedAccuracy } from '../src/probe/classify.js';
import { num, parseFlags, required, runCli } from '../src/util/cli.js';

const USAGE = 'usage: npm run eval:served -- --url URL --data SET [--model NAME] [--limit N] [--concurrency N]';

runCli('eval:served', USAGE, async () => {
  const s = { type: 'string' } as const;
  const v = parseFlags(process.argv.slice(2), { url: s, data: s, model: s, limit: s, concurrency: s });
  const { url, data } = required(v, 'url', 'data');
  const limit = v.limit === undefined ? undefined : num('limit', v.limit, 0, { integer: true, min: 1 });
  const concurrency = num('concurrency', v.concurrency, 16, { integer: true, min: 1 });
  const src = await openDataSource(data);
  const t0 = performance.now();
  const r = await servedAccuracy(src.test, {
    url,
    model: v.model,
    limit,
    concurrency,
    onProgress: (done, total) => {
      if (done % 500 === 0 || done === total) process.stderr.write(`\r${done}/${total} images`);
    },
  });
  const seconds = (performance.now() - t0) / 1000;
  process.stderr.write('\n');
  console.log(
    `${src.name} ${src.test.split}: top-1 ${(100 * r.top1).toFixed(2)}% (${r.correct}/${r.images}) through ${url}/classify, ` +
      `${(r.images / seconds).toFixed(0)} images/s, ${r.retries} retries`,
  );
});
