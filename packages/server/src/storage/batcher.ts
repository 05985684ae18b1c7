/**
 * Natural batching ("group commit") for hot single-row statements: while one batch statement is
 * in flight, the calls that arrive queue up, and the next statement carries all of them.
 *
 * - At low load nothing waits: the first call starts its statement at once, alone.
 * - Under load, N concurrent token requests cost one statement and one commit instead of N. On
 *   PGlite every statement costs ~0.2–0.4 ms of fixed work on one thread whatever its size, so
 *   this is what lets the embedded engine keep up; on PostgreSQL it saves round trips and commits.
 * - Every caller still answers only after its own row is committed: durability and the
 *   one-statement atomicity each caller relied on are unchanged (each row's condition is decided
 *   by the same conditional statement as before, now for many rows).
 * - A failed batch of several is retried one call at a time, so one bad row (a constraint
 *   violation) fails only its own caller.
 */
export class Batcher<In, Out> {
  private queue: { input: In; resolve(out: Out): void; reject(err: unknown): void }[] = [];
  private running = false;

  /**
   * @param runBatch answers one output per input, in order.
   * @param maxBatch most calls per statement (bounds the statement's size and latency).
   */
  constructor(
    private readonly runBatch: (inputs: In[]) => Promise<Out[]>,
    private readonly maxBatch = 64,
  ) {}

  submit(input: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        await this.settle(batch);
      }
    } finally {
      this.running = false;
    }
  }

  private async settle(batch: typeof this.queue): Promise<void> {
    let outputs: Out[];
    try {
      outputs = await this.runBatch(batch.map((item) => item.input));
    } catch (err) {
      if (batch.length === 1) batch[0]?.reject(err);
      else await this.oneByOne(batch);
      return;
    }
    for (const [i, item] of batch.entries()) item.resolve(outputs[i] as Out);
  }

  private async oneByOne(batch: typeof this.queue): Promise<void> {
    for (const item of batch) {
      try {
        const [output] = await this.runBatch([item.input]);
        item.resolve(output as Out);
      } catch (err) {
        item.reject(err);
      }
    }
  }
}
