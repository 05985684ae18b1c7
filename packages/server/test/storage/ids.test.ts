import assert from 'node:assert/strict';
import { test } from 'node:test';
import { timeOrderedId } from '../../src/storage/ids.ts';

test('timeOrderedId: RFC 9562 version 7 and variant bits, the current time in its first 48 bits', () => {
  const before = Date.now();
  const id = timeOrderedId();
  const after = Date.now();
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const ms = Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16);
  assert.ok(ms >= before && ms <= after, `${ms} not within [${before}, ${after}]`);
});

test('timeOrderedId: ids made one after another sort one after another, and never repeat', () => {
  const ids = Array.from({ length: 10_000 }, () => timeOrderedId());
  assert.deepEqual([...ids].sort(), ids);
  assert.equal(new Set(ids).size, ids.length);
});
