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

  publish(event: Invalidation): void {
    this.local.emit('invalidate', event);
    // Best effort: a lost message is covered by the caches' TTL.
    this.publisher?.publish(CHANNEL, JSON.stringify(event)).catch(() => {});
  }

  subscribe(listener: (event: Invalidation) => void): void {
    this.local.on('invalidate', listener);
  }
}
