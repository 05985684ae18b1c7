import { VERSION } from '../version.ts';
import { SEARCH_PARAMS } from './search-params.ts';

/** GET /fhir/R4/metadata: the CapabilityStatement (public, FHIR R4 §3.1.0.13). */
export function capabilityStatement(baseUrl: string) {
  const interaction = [
    'read',
    'vread',
    'update',
    'delete',
    'history-instance',
    'history-type',
    'create',
    'search-type',
  ].map((code) => ({ code }));
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString().slice(0, 10),
    kind: 'instance',
    software: { name: 'fedhir', version: VERSION },
    implementation: { description: 'fedhir FHIR R4 API', url: `${baseUrl}fhir/R4` },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'application/json'],
    rest: [
      {
        mode: 'server',
        security: {
          service: [
            {
              coding: [
                {
                  system: 'http://terminology.hl7.org/CodeSystem/restful-security-service',
                  code: 'SMART-on-FHIR',
                },
              ],
            },
          ],
          extension: [
            {
              url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
              extension: [
                { url: 'authorize', valueUri: `${baseUrl}oauth2/authorize` },
                { url: 'token', valueUri: `${baseUrl}oauth2/token` },
              ],
            },
          ],
        },
        resource: Object.entries(SEARCH_PARAMS).map(([type, params]) => ({
          type,
          interaction,
          versioning: 'versioned',
          conditionalUpdate: false,
          searchParam: Object.entries(params).map(([name, def]) => ({
            name,
            type:
              def.kind === 'human-name' || def.kind === 'string'
                ? 'string'
                : def.kind === 'date'
                  ? 'date'
                  : def.kind === 'reference'
                    ? 'reference'
                    : 'token',
          })),
        })),
        interaction: [{ code: 'batch' }],
      },
    ],
  };
}
