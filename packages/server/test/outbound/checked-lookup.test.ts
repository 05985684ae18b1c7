/**
 * The connect-time address check, exercised without sockets: a stub resolver answers private,
 * metadata and mixed addresses, and the check refuses them before `net.connect` could ever use one
 * (RP-49, TX-18: "a host resolving to a private IP"). No address here is connected to.
 */
import assert from 'node:assert/strict';
import type { LookupAddress } from 'node:dns';
import { describe, test } from 'node:test';
import { parseAllowList } from '../../src/federation/outbound/allow-list.ts';
import {
  createCheckedLookup,
  type ResolvedAddress,
  resolveChecked,
} from '../../src/federation/outbound/checked-lookup.ts';
import { OutboundError } from '../../src/federation/outbound/outbound-error.ts';

const stub =
  (...answers: string[]) =>
  async (): Promise<ResolvedAddress[]> =>
    answers.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));

const none = parseAllowList([]);

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof OutboundError);
    assert.equal(error.code, code);
    return true;
  });
}

describe('resolveChecked', () => {
  test('returns public answers unchanged', async () => {
    const answers = await resolveChecked(
      'idp.example.com',
      stub('93.184.216.34', '2606:2800:220:1::1'),
      none,
    );
    assert.deepEqual(answers, [
      { address: '93.184.216.34', family: 4 },
      { address: '2606:2800:220:1::1', family: 6 },
    ]);
  });

  test('refuses a name resolving to any private, loopback, link-local or metadata address', async () => {
    for (const address of [
      '10.0.0.5',
      '172.16.0.1',
      '192.168.1.1',
      '100.64.0.1',
      '127.0.0.1',
      '169.254.169.254',
      '169.254.1.1',
      '0.0.0.0',
      '::1',
      '::ffff:10.0.0.5',
      '::ffff:127.0.0.1',
      'fd00:ec2::254',
      'fe80::1',
      'fc00::1',
      '64:ff9b::a9fe:a9fe',
      '2002:a00:5::',
    ]) {
      await rejectsWith(resolveChecked('evil.example.com', stub(address), none), 'blocked_address');
    }
  });

  test('one private answer among public ones refuses the whole name', async () => {
    await rejectsWith(
      resolveChecked('evil.example.com', stub('93.184.216.34', '10.0.0.5'), none),
      'blocked_address',
    );
    await rejectsWith(
      resolveChecked('evil.example.com', stub('10.0.0.5', '93.184.216.34'), none),
      'blocked_address',
    );
  });

  test('allow-listed addresses, CIDRs and names pass', async () => {
    const byAddress = parseAllowList(['10.0.0.5']);
    assert.equal((await resolveChecked('idp.corp.example', stub('10.0.0.5'), byAddress)).length, 1);
    await rejectsWith(resolveChecked('idp.corp.example', stub('10.0.0.6'), byAddress), 'blocked_address');
    const byCidr = parseAllowList(['10.0.0.0/8']);
    assert.equal((await resolveChecked('idp.corp.example', stub('10.1.2.3', '10.3.2.1'), byCidr)).length, 2);
    const byName = parseAllowList(['idp.corp.example']);
    assert.equal((await resolveChecked('IDP.corp.example', stub('10.9.9.9'), byName)).length, 1);
    await rejectsWith(resolveChecked('other.corp.example', stub('10.9.9.9'), byName), 'blocked_address');
  });

  test('literal addresses are checked without calling the resolver', async () => {
    let calls = 0;
    const counting = async () => {
      calls++;
      return [];
    };
    await rejectsWith(resolveChecked('127.0.0.1', counting, none), 'blocked_address');
    await rejectsWith(resolveChecked('[::1]', counting, none), 'blocked_address');
    assert.deepEqual(await resolveChecked('8.8.8.8', counting, none), [{ address: '8.8.8.8', family: 4 }]);
    assert.equal(calls, 0);
  });

  test('resolver failures, empty answers and junk answers are network errors', async () => {
    const failing = async () => {
      throw Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.example'), { code: 'ENOTFOUND' });
    };
    await rejectsWith(resolveChecked('nowhere.example', failing, none), 'network');
    await rejectsWith(
      resolveChecked('nowhere.example', async () => [], none),
      'network',
    );
    await rejectsWith(resolveChecked('nowhere.example', stub('not-an-ip'), none), 'network');
  });
});

describe('createCheckedLookup (the socket lookup)', () => {
  type Answer = { error: Error | null; address: string | LookupAddress[]; family: number | undefined };
  const call = (lookup: ReturnType<typeof createCheckedLookup>, options: object) =>
    new Promise<Answer>((resolve) =>
      lookup('idp.example.com', options, (error, address, family) => resolve({ error, address, family })),
    );

  test('answers a single address, or all of them for happy eyeballs', async () => {
    const lookup = createCheckedLookup(stub('93.184.216.34', '2606:2800:220:1::1'), none);
    assert.deepEqual(await call(lookup, {}), { error: null, address: '93.184.216.34', family: 4 });
    assert.deepEqual(await call(lookup, { family: 6 }), {
      error: null,
      address: '2606:2800:220:1::1',
      family: 6,
    });
    const all = await call(lookup, { all: true });
    assert.equal(all.error, null);
    assert.deepEqual(all.address, [
      { address: '93.184.216.34', family: 4 },
      { address: '2606:2800:220:1::1', family: 6 },
    ]);
  });

  test('passes the OutboundError to the socket instead of an address', async () => {
    const lookup = createCheckedLookup(stub('169.254.169.254'), none);
    const answer = await call(lookup, { all: true });
    assert.ok(answer.error instanceof OutboundError);
    assert.equal(answer.error.code, 'blocked_address');
  });

  test('a family with no checked address is a network error', async () => {
    const lookup = createCheckedLookup(stub('93.184.216.34'), none);
    const answer = await call(lookup, { family: 6 });
    assert.ok(answer.error instanceof OutboundError);
    assert.equal(answer.error.code, 'network');
  });
});
