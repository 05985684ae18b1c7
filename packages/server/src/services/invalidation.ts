import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';

/** What another instance may have changed, so that cached state about it must be dropped. */
export type InvalidationTopic = 'login' | 'membership' | 'client' | 'project';

export interface Invalidation {
  topic: InvalidationTopic;
  id: string;
}

const CHANNEL = 'fedhir:invalidate';

/**
 * The bus that carries "this changed" between instances (protocol.md §6): local listeners are told
 * at once, and with Redis every other instance hears it through pub/sub. Without Redis (or while it
 * is down) caches rely on their short TTL (≤ 5 s), so revocation still reaches every instance.
 */
/** See {@link InvalidationBus.publish}. */
const DELIVERY_MARGIN_MS = 10;

export class InvalidationBus {
  private readonly local = new EventEmitter();

  constructor(
    private readonly publisher?: Redis,
    subscriber?: Redis,
  ) {
    this.local.setMaxListeners(100);
    if (subscriber) {
      subscriber.subscribe(CHANNEL).catch(() => {});
      subscriber.on('message', (channel, message) => {
        if (channel !== CHANNEL) return;
        try {
          const event = JSON.parse(message) as Invalidation;
          this.local.emit('invalidate', event);
        } catch {
          // A malformed message is not ours to act on.
        }
      });
    }
  }

  /**
   * Tells this instance at once and the others through Redis. Resolves once Redis has taken the
   * message (bounded: never longer than 250 ms, never rejects), so a caller that awaits it — a
   * revocation — answers only after the other instances have been sent the news.
   */
  publish(event: Invalidation): Promise<void> {
    this.local.emit('invalidate', event);
    if (!this.publisher) return Promise.resolve();
    // Best effort: a lost message is covered by the caches' TTL.
    // Redis answers PUBLISH once the message is in the subscribers' socket buffers, not once they
    // have read it; an instance's event loop may read the caller's next HTTP request first. A short
    // pause after the answer lets idle instances read the message before ours is answered (it only
    // delays revocations, which are rare; a stalled instance is still covered by the TTL).
    const sent = this.publisher.publish(CHANNEL, JSON.stringify(event)).then(
      () => new Promise<void>((resolve) => setTimeout(resolve, DELIVERY_MARGIN_MS)),
      () => {},
    );
    const bound = new Promise<void>((resolve) => setTimeout(resolve, 250).unref());
    return Promise.race([sent, bound]);
  }

  subscribe(listener: (event: Invalidation) => void): void {
    this.local.on('invalidate', listener);
  }
}
