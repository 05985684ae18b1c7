/**
 * The natural-batching queue behind the hot single-row statements (src/storage/batcher.ts). Pure
 * logic, so the "database" here is a function that records the batches it was given.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Batcher } from '../../src/storage/batcher.ts';

test('a call alone runs at once; calls arriving while a batch runs share the next one, in order', async () => {
  const batches: number[][] = [];
  let release: () => void = () => {};
  const batcher = new Batcher<number, string>(async (inputs) => {
    batches.push([...inputs]);
    if (batches.length === 1) await new Promise<void>((resolve) => (release = resolve));
    return inputs.map((n) => `answer ${n}`);
  });
  const first = batcher.submit(1);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(batches, [[1]], 'the first call did not wait for company');
  const rest = [2, 3, 4].map((n) => batcher.submit(n));
  release();
  assert.equal(await first, 'answer 1');
  assert.deepEqual(await Promise.all(rest), ['answer 2', 'answer 3', 'answer 4']);
  assert.deepEqual(batches, [[1], [2, 3, 4]]);
});

test('batches are bounded by maxBatch', async () => {
  const sizes: number[] = [];
  const batcher = new Batcher<number, number>(async (inputs) => {
    sizes.push(inputs.length);
    await new Promise((resolve) => setImmediate(resolve));
    return inputs;
  }, 3);
  const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => batcher.submit(i)));
  assert.deepEqual(answers, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.ok(Math.max(...sizes) <= 3, `a batch exceeded 3: ${sizes.join(',')}`);
  assert.equal(
    sizes.reduce((a, b) => a + b, 0),
    10,
  );
});

test('a failed batch is retried one call at a time: only the bad call fails', async () => {
  const batches: number[][] = [];
  let release: () => void = () => {};
  const batcher = new Batcher<number, number>(async (inputs) => {
    batches.push([...inputs]);
    if (batches.length === 1) await new Promise<void>((resolve) => (release = resolve));
    if (inputs.includes(13)) throw new Error('row 13 violates a constraint');
    return inputs.map((n) => n * 2);
  });
  const first = batcher.submit(1);
  await new Promise((resolve) => setImmediate(resolve));
  const settled = Promise.allSettled([12, 13, 14].map((n) => batcher.submit(n)));
  release();
  assert.equal(await first, 2);
  const results = await settled;
  assert.deepEqual(
    results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)),
    [24, 'row 13 violates a constraint', 28],
  );
  assert.deepEqual(batches, [[1], [12, 13, 14], [12], [13], [14]]);
});

test('after a failure the queue keeps working', async () => {
  let fail = true;
  const batcher = new Batcher<string, string>(async (inputs) => {
    if (fail) throw new Error('database unavailable');
    return inputs.map((s) => s.toUpperCase());
  });
  await assert.rejects(batcher.submit('a'), /database unavailable/);
  fail = false;
  assert.equal(await batcher.submit('b'), 'B');
});
