// Directory mode: a keepsake `directory` canister places capsules on storage canisters.
// `KeepsakeDirectory` finds the storage canister of a capsule (one query, then cached:
// a capsule never moves) and gives a `Keepsake` client for it; users upload and read on
// the storage canister directly.
import { Actor, type ActorSubclass, type HttpAgent } from '@icp-sdk/core/agent';
import { Principal } from '@icp-sdk/core/principal';
import {
  idlFactory as directoryIdl,
  type _SERVICE as DirectoryService,
  type CapsuleLocation,
  type Error as DirectoryErrorVariant,
  type LocationPage,
} from './declarations-directory/directory.did.js';
import { DEFAULT_RETRY_FOR_MS, Keepsake, KeepsakeError, retrying, type KeepsakeOptions } from './index.js';

export type { CapsuleLocation, StorageInfo } from './declarations-directory/directory.did.js';
export { directoryIdl };

/** Where locations are kept between sessions (e.g. `localStorage`); a Map by default. */
export interface LocationCache {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

class MapCache implements LocationCache {
  private m = new Map<string, string>();
  getItem(key: string) {
    return this.m.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    this.m.set(key, value);
  }
}

function ok<T>(r: { Ok: T } | { Err: DirectoryErrorVariant }, method: string): T {
  if ('Err' in r) throw new KeepsakeError(r.Err, method);
  return r.Ok;
}

export class KeepsakeDirectory {
  readonly actor: ActorSubclass<DirectoryService>;
  private readonly id: string;

  /** `options` apply to the directory's queries and go to every `Keepsake` that `keepsakeFor` makes. */
  constructor(
    readonly agent: HttpAgent,
    directoryId: Principal | string,
    private readonly cache: LocationCache = new MapCache(),
    private readonly options: KeepsakeOptions = {},
  ) {
    this.id = directoryId.toString();
    this.actor = Actor.createActor<DirectoryService>(directoryIdl, { agent, canisterId: directoryId });
  }

  /** A query, retried after failures in transit like the storage client's calls
   * (`createCapsule` is not: a lost reply may have created a capsule). */
  private query<T>(f: () => Promise<T>): Promise<T> {
    return retrying(f, this.options.retryForMs ?? DEFAULT_RETRY_FOR_MS);
  }

  private key(capsuleId: bigint) {
    return `keepsake:${this.id}:capsule:${capsuleId}`;
  }

  private remember(l: CapsuleLocation) {
    this.cache.setItem(this.key(l.capsule_id), l.canister_id.toText());
  }

  /** The storage canister of `capsuleId`: the cache, else one query to the directory
   * (`capsules_route`: it answers any caller, members of a shared capsule too, and tells
   * only the canister). */
  async locate(capsuleId: bigint): Promise<Principal> {
    const cached = this.cache.getItem(this.key(capsuleId));
    if (cached) return Principal.fromText(cached);
    let canister: Principal;
    try {
      canister = ok(await this.query(() => this.actor.capsules_route(capsuleId)), 'capsules_route');
    } catch (e) {
      // A directory from before capsules_route: its capsules_locate answers anyone.
      if (e instanceof KeepsakeError || !/IC0536|no query method/.test(String((e as Error)?.message ?? e))) throw e;
      canister = ok(await this.query(() => this.actor.capsules_locate(capsuleId)), 'capsules_locate').canister_id;
    }
    this.cache.setItem(this.key(capsuleId), canister.toText());
    return canister;
  }

  /** A client for the storage canister that holds `capsuleId`. */
  async keepsakeFor(capsuleId: bigint): Promise<Keepsake> {
    return new Keepsake(this.agent, await this.locate(capsuleId), this.options);
  }

  /** Creates a capsule of the caller (placed where there is room); `invite`: a code from
   * the operator, for an invite-only directory. */
  async createCapsule(name: string, invite?: string): Promise<CapsuleLocation> {
    const l = ok(await this.actor.capsules_create({ name, invite: invite === undefined ? [] : [invite] }), 'capsules_create');
    this.remember(l);
    return l;
  }

  /** Every capsule the caller owns, across all storage canisters. */
  async capsules(): Promise<CapsuleLocation[]> {
    const all: CapsuleLocation[] = [];
    let cursor: [] | [bigint] = [];
    for (;;) {
      const c = cursor;
      const page: LocationPage = await this.query(() => this.actor.capsules_list(c, []));
      page.capsules.forEach((l: CapsuleLocation) => this.remember(l));
      all.push(...page.capsules);
      if (page.next_cursor.length === 0) return all;
      cursor = [page.next_cursor[0]];
    }
  }
}
