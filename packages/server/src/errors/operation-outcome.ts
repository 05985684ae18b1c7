import type { IssueCode } from './http-errors.ts';

export interface OperationOutcome {
  resourceType: 'OperationOutcome';
  id?: string;
  issue: {
    severity: 'error' | 'warning' | 'information';
    code: IssueCode | 'informational';
    details: { text: string };
    expression?: string[];
  }[];
}

export function operationOutcome(code: IssueCode, text: string, expression?: string): OperationOutcome {
  return {
    resourceType: 'OperationOutcome',
    issue: [
      { severity: 'error', code, details: { text }, ...(expression ? { expression: [expression] } : {}) },
    ],
  };
}

export function allOk(text = 'All OK'): OperationOutcome {
  return {
    resourceType: 'OperationOutcome',
    id: 'allok',
    issue: [{ severity: 'information', code: 'informational', details: { text } }],
  };
}
