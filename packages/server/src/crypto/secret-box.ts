import { hkdfSync } from 'node:crypto';
import { CompactEncrypt, compactDecrypt } from 'jose';

/**
 * Encryption of secrets at rest (signing keys, identity-provider client secrets, refresh
 * successors): JWE compact serialisation with direct AES-256-GCM (RFC 7516, RFC 7518 §5.3), keyed
 * by HKDF-SHA-256 from SECRET_KEY so that the raw variable is never used as a key directly.
 */
export class SecretBox {
  private readonly key: Uint8Array;

  constructor(secretKey: string) {
    this.key = new Uint8Array(hkdfSync('sha256', secretKey, 'fedhir', 'fedhir secret-box v1', 32));
  }

  async seal(plaintext: string): Promise<string> {
    return new CompactEncrypt(new TextEncoder().encode(plaintext))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
      .encrypt(this.key);
  }

  async open(sealed: string): Promise<string> {
    const { plaintext } = await compactDecrypt(sealed, this.key, {
      keyManagementAlgorithms: ['dir'],
      contentEncryptionAlgorithms: ['A256GCM'],
    });
    return new TextDecoder().decode(plaintext);
  }
}
