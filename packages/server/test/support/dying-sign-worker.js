// @ts-check
/**
 * A signing thread that dies as soon as it is handed its first job, without answering: the real
 * failure (a crash of the thread mid-signature) made deterministic, for test/oauth/signer.test.ts.
 */
import { parentPort } from 'node:worker_threads';

parentPort?.once('message', () => process.exit(1));
