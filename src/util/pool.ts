// Bounded concurrency for async work over a numbered list: the probe's uploads, the embedder's decodes.

/**
 * Runs `work(i)` for i in 0..count-1 with at most `limit` in flight. After a failure no new item starts, and the
 * first error is thrown once the items already in flight have settled (no request is left running behind us).
 */
export async function pool(count: number, limit: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let error: { err: unknown } | undefined;
  const worker = async () => {
    while (!error && next < count) {
      const i = next++;
      try {
        await work(i);
      } catch (err) {
        error ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  if (error) throw error.err;
}
