import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Policy, smartScopeRules } from '../../src/fhir/policy.ts';

test('SMART scopes narrow access: v1 read/write/*, v2 cruds subsets', () => {
  const cases: [string, string, 'read' | 'write', boolean][] = [
    ['patient/Observation.read', 'Observation', 'read', true],
    ['patient/Observation.read', 'Observation', 'write', false],
    ['patient/Observation.write', 'Observation', 'write', true],
    ['patient/Observation.write', 'Observation', 'read', false],
    ['user/*.*', 'Patient', 'write', true],
    ['user/Patient.rs', 'Patient', 'read', true],
    ['user/Patient.rs', 'Patient', 'write', false],
    ['user/Patient.cud', 'Patient', 'read', false],
    ['user/Patient.cud', 'Patient', 'write', true],
    ['user/Patient.cruds', 'Observation', 'read', false],
  ];
  for (const [scope, type, op, expected] of cases) {
    assert.equal(
      new Policy(undefined, smartScopeRules(`openid ${scope}`)).allows(type, op),
      expected,
      `${scope} ${type} ${op}`,
    );
  }
  // No resource scopes: the membership's policy alone decides.
  assert.equal(smartScopeRules('openid offline_access'), undefined);
});
