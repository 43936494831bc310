import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import {
  Hello,
  PROTOCOL_VERSION,
  type DeviceMessage,
  type HelloMessage,
  type OfferMessage,
  type ResultMessage,
  type ServerMessage,
} from '../protocol/messages.ts';
import { isValidId } from '../protocol/names.ts';
import { CameraConnection, type CloseInfo, type ConnectionState, type WelcomeMessage } from './connection.ts';
import { PartialDownloads } from './download.ts';
import type { CameraEvents } from './events.ts';
import { deviceProfile, isAlwaysFailing } from './identity.ts';
import { GroundTruth, type CameraFailure, type CameraSnapshot } from './ground-truth.ts';
import { checkDeviceId, checkWebSocketUrl, resolveBehaviour, type CameraBehaviour, type CameraOptions } from './options.ts';
import { attemptKey, ResultOutbox } from './result-outbox.ts';
import { readStateFile, StateFileWriter } from './state-file.ts';
import { runUpdate, type UpdateHost, type UpdateOutcome } from './update.ts';
import { UrlRequests, type FreshUrlMessage } from './url-requests.ts';

type OnlineMessage = Exclude<ServerMessage, { type: 'welcome' }>;
type MessageHandlers = { [T in OnlineMessage['type']]: (message: Extract<OnlineMessage, { type: T }>) => void };

const MAX_HELLO_PATCHES = Hello.properties.patches.maxItems ?? 1024;
/** A URL this close to expiry is renewed before a request starts, because clocks and requests take time. */
const URL_EXPIRY_MARGIN_MS = 1_000;

/**
 * One simulated camera speaking device protocol v1. It handles offers one at a time in the order received,
 * downloads with resume, verifies, applies, and sends each result until the server acknowledges it.
 */
export class SimulatedCamera extends EventEmitter<CameraEvents> {
  readonly deviceId: string;
  readonly behaviour: CameraBehaviour;
  /** True when the camera belongs to the `failureRate` share whose every apply fails. */
  readonly alwaysFails: boolean;

  private modelName: string;
  private firmwareVersion: string;
  private readonly truth: GroundTruth;

  private readonly log: Logger;
  private readonly connection: CameraConnection;
  private readonly updateHost: UpdateHost;
  private readonly stateFile: string | undefined;
  private stateWriter: StateFileWriter | null = null;
  private readonly partials = new PartialDownloads();
  private readonly urlRequests = new UrlRequests();
  private readonly outbox = new ResultOutbox();
  private readonly queue: OfferMessage[] = [];
  private worker: Promise<void> | null = null;
  private readonly stopController = new AbortController();
  /** Attempts for which the disconnectRate draw was made, so each attempt drops its connection at most once. */
  private readonly disconnectDrawn = new Set<string>();
  private serverClockOffsetMs = 0;
  private started = false;

  private readonly messageHandlers: MessageHandlers = {
    offer: (message) => this.enqueue(message),
    url: (message) => this.onUrl(message),
    result_ack: (message) => this.onResultAck(message),
    error: (message) => this.onServerError(message),
  };

  constructor(options: CameraOptions) {
    super();
    checkWebSocketUrl(options.url);
    checkDeviceId(options.deviceId);
    const invalidPatch = options.applied?.find((id) => !isValidId(id));
    if (invalidPatch !== undefined) throw new TypeError(`invalid patch id ${JSON.stringify(invalidPatch)} in applied`);

    this.deviceId = options.deviceId;
    this.behaviour = resolveBehaviour(options);
    this.alwaysFails = isAlwaysFailing(this.deviceId, this.behaviour.failureRate);
    const profile = deviceProfile(this.deviceId);
    this.modelName = options.model ?? profile.model;
    this.firmwareVersion = options.firmware ?? profile.firmware;
    this.truth = new GroundTruth(options.applied ?? []);
    this.stateFile = options.stateFile;
    this.log = this.behaviour.logger.child({ deviceId: this.deviceId });

    this.connection = new CameraConnection(
      options.url,
      options.token,
      this.behaviour,
      {
        hello: () => this.hello(),
        onWelcome: (welcome) => this.onWelcome(welcome),
        onMessage: (message) => this.dispatch(message),
        onInvalidMessage: (details) => this.onInvalidMessage(details),
        onClose: (info) => this.onClose(info),
        onStopped: (closeCode) => this.onStoppedByServer(closeCode),
      },
      this.log,
    );
    this.updateHost = this.createUpdateHost();
  }

  get model(): string {
    return this.modelName;
  }

  get firmware(): string {
    return this.firmwareVersion;
  }

  get state(): ConnectionState {
    return this.connection.state;
  }

  get online(): boolean {
    return this.connection.state === 'online';
  }

  /** Applied patch ids, oldest first. */
  get appliedPatches(): readonly string[] {
    return this.truth.applied;
  }

  /** Returns how often this run applied the patch. */
  applyCount(patchId: string): number {
    return this.truth.applyCount(patchId);
  }

  /**
   * Loads the state file when one is configured, then opens the first connection. Resolves once connecting
   * has begun, not when the server welcomed the camera. The `connected` event marks the welcome.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (this.stateFile !== undefined) await this.loadState(this.stateFile);
    if (this.stopController.signal.aborted) return;
    this.log.debug({ model: this.modelName, firmware: this.firmwareVersion }, 'camera starting');
    this.connection.start();
  }

  /** Closes the connection, cancels downloads and timers, and resolves when nothing of the camera is left running. */
  async stop(): Promise<void> {
    const wasStopped = this.stopController.signal.aborted;
    this.stopController.abort(new Error('camera stopped'));
    await this.connection.stop();
    await this.worker;
    await this.stateWriter?.flush();
    if (!wasStopped) this.emit('stopped', { deviceId: this.deviceId, closeCode: null });
  }

  snapshot(): CameraSnapshot {
    return {
      deviceId: this.deviceId,
      model: this.modelName,
      firmware: this.firmwareVersion,
      state: this.connection.state,
      connections: this.connection.connections,
      lastCloseCode: this.connection.lastCloseCode,
      unacknowledgedResults: this.outbox.size,
      ...this.truth.snapshot(),
    };
  }

  private async loadState(path: string): Promise<void> {
    this.stateWriter = new StateFileWriter(path);
    const saved = await readStateFile(path);
    if (saved === null) {
      await this.saveState();
      return;
    }
    if (saved.deviceId !== this.deviceId) {
      throw new Error(
        `state file ${path} belongs to device ${saved.deviceId}, not ${this.deviceId}. Use another state file path.`,
      );
    }
    this.modelName = saved.model;
    this.firmwareVersion = saved.firmware;
    this.truth.replaceApplied(saved.applied);
  }

  private async saveState(): Promise<void> {
    await this.stateWriter?.write({
      deviceId: this.deviceId,
      model: this.modelName,
      firmware: this.firmwareVersion,
      applied: [...this.truth.applied],
    });
  }

  private hello(): HelloMessage {
    // NOTE: the protocol caps `patches` at MAX_HELLO_PATCHES, so a camera with more sends only its newest ones.
    return {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      deviceId: this.deviceId,
      model: this.modelName,
      firmware: this.firmwareVersion,
      patches: this.truth.applied.slice(-MAX_HELLO_PATCHES),
    };
  }

  /** Sends a message on a welcomed connection. Returns false when the camera is offline. */
  private sendOnline(message: DeviceMessage): boolean {
    return this.connection.state === 'online' && this.connection.send(message);
  }

  private dispatch(message: ServerMessage): void {
    if (message.type === 'welcome') return;
    const handler = this.messageHandlers[message.type] as (message: OnlineMessage) => void;
    handler(message);
  }

  private onWelcome(welcome: WelcomeMessage): void {
    this.serverClockOffsetMs = welcome.serverTime - Date.now();
    this.log.debug({ sessionId: welcome.sessionId, connection: this.connection.connections }, 'welcomed');
    this.emit('connected', {
      deviceId: this.deviceId,
      sessionId: welcome.sessionId,
      connection: this.connection.connections,
    });
    for (const result of this.outbox.pending()) this.sendOnline(result);
  }

  private onClose(info: CloseInfo): void {
    // The server offers unfinished updates again after the reconnect, with fresh URLs.
    this.queue.length = 0;
    this.emit('disconnected', { deviceId: this.deviceId, ...info });
  }

  private onStoppedByServer(closeCode: number): void {
    this.stopController.abort(new Error(`server closed with code ${closeCode}`));
    this.emit('stopped', { deviceId: this.deviceId, closeCode });
  }

  private onInvalidMessage(details: string): void {
    this.truth.invalidMessages += 1;
    this.log.warn({ details }, 'invalid message from the server, ignored');
    this.emit('invalid-message', { deviceId: this.deviceId, details });
  }

  private onUrl(message: FreshUrlMessage): void {
    if (!this.urlRequests.resolve(message)) {
      this.log.info({ patchId: message.patchId, attempt: message.attempt }, 'url reply matches no pending request');
    }
  }

  private onResultAck(message: Extract<ServerMessage, { type: 'result_ack' }>): void {
    const { patchId, attempt, state } = message;
    this.outbox.acknowledge(patchId, attempt);
    this.emit('acknowledged', { deviceId: this.deviceId, patchId, attempt, state });
  }

  private onServerError(message: Extract<ServerMessage, { type: 'error' }>): void {
    const { code, retryable, details } = message;
    this.truth.recordServerError(code);
    this.log.warn({ code, retryable, details, serverMessage: message.message }, 'server sent an error');
    this.urlRequests.rejectWithServerError(code, retryable, message.message);
    this.emit('server-error', { deviceId: this.deviceId, code, message: message.message, retryable, details });
  }

  /** Queues an offer. A queued offer for the same patch is replaced in place by one with a newer attempt. */
  private enqueue(offer: OfferMessage): void {
    if (this.stopController.signal.aborted) return;
    const queued = this.queue.findIndex((entry) => entry.patchId === offer.patchId);
    const existing = this.queue[queued];
    if (existing) {
      if (offer.attempt >= existing.attempt) this.queue[queued] = offer;
      return;
    }
    this.queue.push(offer);
    this.worker ??= this.work().finally(() => {
      this.worker = null;
    });
  }

  private async work(): Promise<void> {
    for (let offer = this.queue.shift(); offer; offer = this.queue.shift()) {
      if (this.stopController.signal.aborted) return;
      try {
        await this.handleOffer(offer);
      } catch (err) {
        this.log.error({ err, patchId: offer.patchId, attempt: offer.attempt }, 'offer handling failed');
      }
    }
  }

  private async handleOffer(offer: OfferMessage): Promise<void> {
    const { patchId, attempt } = offer;
    if (this.truth.hasApplied(patchId)) {
      this.truth.alreadyApplied += 1;
      this.emit('already-applied', { deviceId: this.deviceId, patchId, attempt });
      this.report({ type: 'result', patchId, attempt, outcome: 'applied' });
      return;
    }
    const previous = this.outbox.latestFor(patchId);
    if (previous?.attempt === attempt) {
      this.report(previous);
      return;
    }

    const stop = this.stopController.signal;
    const download = AbortSignal.any([this.connection.onlineSignal, stop]);
    if (download.aborted) return;
    let outcome: UpdateOutcome;
    try {
      outcome = await runUpdate(offer, this.updateHost, { download, stop });
    } catch (err) {
      if (download.aborted) {
        this.log.debug({ patchId, attempt }, 'update interrupted until the server offers the patch again');
        return;
      }
      throw err;
    }

    if (outcome.outcome === 'applied') {
      await this.recordApplied(patchId, attempt);
      this.report({ type: 'result', patchId, attempt, outcome: 'applied' });
      return;
    }
    const failure: CameraFailure = { patchId, attempt, reason: outcome.reason, detail: outcome.detail };
    this.truth.recordFailure(failure);
    this.log.info(failure, 'update failed');
    this.emit('failed', { deviceId: this.deviceId, ...failure });
    this.report({ type: 'result', patchId, attempt, outcome: 'failed', reason: outcome.reason, detail: outcome.detail });
  }

  private async recordApplied(patchId: string, attempt: number): Promise<void> {
    const applyCount = this.truth.recordApplied(patchId);
    try {
      await this.saveState();
    } catch (err) {
      this.log.error({ err, path: this.stateFile, patchId }, 'state file write failed, so a restart may apply the patch again');
    }
    this.log.info({ patchId, attempt }, 'patch applied');
    this.emit('applied', { deviceId: this.deviceId, patchId, attempt, applyCount });
  }

  /** Sends a result now if online, and again after every reconnect until `result_ack` arrives. */
  private report(result: ResultMessage): void {
    this.outbox.add(result);
    this.sendOnline(result);
  }

  private planDisconnect(offer: OfferMessage, offset: number): number | null {
    const key = attemptKey(offer.patchId, offer.attempt);
    if (this.disconnectDrawn.has(key)) return null;
    this.disconnectDrawn.add(key);
    const remaining = offer.size - offset;
    if (remaining <= 0 || this.behaviour.random() >= this.behaviour.disconnectRate) return null;
    // Drop somewhere between 20% and 80% of what is left, so the resume starts from a real middle.
    return offset + Math.max(1, Math.floor(remaining * (0.2 + 0.6 * this.behaviour.random())));
  }

  private createUpdateHost(): UpdateHost {
    return {
      behaviour: this.behaviour,
      alwaysFails: this.alwaysFails,
      partials: this.partials,
      log: this.log,
      sendProgress: (message) => {
        this.sendOnline({ type: 'progress', ...message });
        this.emit('progress', { deviceId: this.deviceId, ...message });
      },
      requestUrl: (patchId, attempt, signal) =>
        this.urlRequests.request(
          patchId,
          attempt,
          () => this.sendOnline({ type: 'url_request', patchId, attempt }),
          this.behaviour.urlRequestTimeoutMs,
          signal,
        ),
      isExpired: (expiresAt) => expiresAt - (Date.now() + this.serverClockOffsetMs) < URL_EXPIRY_MARGIN_MS,
      planDisconnect: (offer, offset) => this.planDisconnect(offer, offset),
      dropConnection: () => {
        this.log.info('dropping the connection mid-download (disconnectRate)');
        this.connection.drop();
      },
      onResumed: (offer, offset) => {
        this.truth.resumedDownloads += 1;
        this.emit('resumed', { deviceId: this.deviceId, patchId: offer.patchId, attempt: offer.attempt, offset });
      },
    };
  }
}
