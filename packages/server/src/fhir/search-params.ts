/**
 * The search parameters fedhir supports, per resource type (docs/fhir.md lists them). Each maps a
 * FHIR search parameter to one top-level element of the resource and a kind that decides how it is
 * matched (FHIR R4 §3.1.1.4 "search parameter types").
 */
export type ParamKind = 'string' | 'token' | 'reference' | 'date' | 'human-name' | 'telecom' | 'identifier';

export interface SearchParamDef {
  kind: ParamKind;
  /** Top-level element (for human-name: the part — family, given or any). */
  path: string;
  /** For `telecom`: the ContactPoint system it matches. */
  system?: string;
}

const person: Record<string, SearchParamDef> = {
  name: { kind: 'human-name', path: 'any' },
  family: { kind: 'human-name', path: 'family' },
  given: { kind: 'human-name', path: 'given' },
  identifier: { kind: 'identifier', path: 'identifier' },
  email: { kind: 'telecom', path: 'telecom', system: 'email' },
  phone: { kind: 'telecom', path: 'telecom', system: 'phone' },
  telecom: { kind: 'telecom', path: 'telecom' },
  birthdate: { kind: 'date', path: 'birthDate' },
  gender: { kind: 'token', path: 'gender' },
  active: { kind: 'token', path: 'active' },
};

const clinical: Record<string, SearchParamDef> = {
  subject: { kind: 'reference', path: 'subject' },
  patient: { kind: 'reference', path: 'subject' },
  status: { kind: 'token', path: 'status' },
  code: { kind: 'token', path: 'code' },
  identifier: { kind: 'identifier', path: 'identifier' },
};

export const SEARCH_PARAMS: Record<string, Record<string, SearchParamDef>> = {
  Patient: { ...person, 'general-practitioner': { kind: 'reference', path: 'generalPractitioner' } },
  Practitioner: person,
  RelatedPerson: { ...person, patient: { kind: 'reference', path: 'patient' } },
  Observation: {
    ...clinical,
    date: { kind: 'date', path: 'effectiveDateTime' },
    encounter: { kind: 'reference', path: 'encounter' },
    category: { kind: 'token', path: 'category' },
  },
  // Condition has no `status` element (R4): clinical-status instead.
  Condition: {
    subject: clinical.subject as SearchParamDef,
    patient: clinical.patient as SearchParamDef,
    code: clinical.code as SearchParamDef,
    identifier: clinical.identifier as SearchParamDef,
    'clinical-status': { kind: 'token', path: 'clinicalStatus' },
    encounter: { kind: 'reference', path: 'encounter' },
  },
  // Encounter has `type`, not `code`; its date is a Period (not searchable by this simple table yet).
  Encounter: {
    subject: clinical.subject as SearchParamDef,
    patient: clinical.patient as SearchParamDef,
    status: clinical.status as SearchParamDef,
    identifier: clinical.identifier as SearchParamDef,
    class: { kind: 'token', path: 'class' },
    type: { kind: 'token', path: 'type' },
  },
  MedicationRequest: {
    ...clinical,
    code: { kind: 'token', path: 'medicationCodeableConcept' },
    intent: { kind: 'token', path: 'intent' },
  },
  AllergyIntolerance: {
    patient: { kind: 'reference', path: 'patient' },
    code: { kind: 'token', path: 'code' },
    identifier: { kind: 'identifier', path: 'identifier' },
  },
  Organization: {
    name: { kind: 'string', path: 'name' },
    identifier: { kind: 'identifier', path: 'identifier' },
    active: { kind: 'token', path: 'active' },
  },
  ClientApplication: { name: { kind: 'string', path: 'name' } },
  ProjectMembership: {
    user: { kind: 'reference', path: 'user' },
    profile: { kind: 'reference', path: 'profile' },
    'external-id': { kind: 'string', path: 'externalId' },
  },
  AuditEvent: { outcome: { kind: 'token', path: 'outcome' }, subtype: { kind: 'token', path: 'subtype' } },
};

/** Parameters every type accepts (FHIR R4 §3.1.1.3, §3.1.1.5). */
export const COMMON_PARAMS = new Set([
  '_id',
  '_lastUpdated',
  '_count',
  '_offset',
  '_sort',
  '_total',
  '_summary',
  '_format',
  '_elements',
]);
