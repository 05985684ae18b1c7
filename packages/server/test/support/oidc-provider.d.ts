// Minimal typings for oidc-provider 9 as test/support/exchange-idp.ts uses it (no @types package is
// installed): the provider's request callback and the models that mint real tokens without a browser.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export interface OidcClient {
    clientId: string;
  }

  interface TokenModel {
    save(): Promise<string>;
    destroy(): Promise<void>;
  }

  interface TokenModelClass<Init, T extends TokenModel = TokenModel> {
    new (init: Init): T;
    find(value: string): Promise<T | undefined>;
  }

  interface GrantModel extends TokenModel {
    addOIDCScope(scope: string): void;
    addResourceScope(resource: string, scope: string): void;
  }

  interface IdTokenModel {
    scope: string;
    set(claim: string, value: unknown): void;
    issue(options: { use: 'idtoken' }): Promise<string>;
  }

  export class ResourceServer {
    constructor(identifier: string, data: Record<string, unknown>);
  }

  export default class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    readonly issuer: string;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    on(event: string, listener: (...args: unknown[]) => void): this;
    readonly Client: { find(id: string): Promise<OidcClient | undefined> };
    readonly Grant: TokenModelClass<{ accountId: string; clientId: string }, GrantModel>;
    readonly AccessToken: TokenModelClass<Record<string, unknown>>;
    readonly RefreshToken: TokenModelClass<Record<string, unknown>>;
    readonly ResourceServer: typeof ResourceServer;
    readonly IdToken: new (
      claims: Record<string, unknown>,
      options: { client: OidcClient },
    ) => IdTokenModel;
  }
}
