/** Node-only: a WebSocket factory over the `ws` package (Node 20 has no global WebSocket). */
import WebSocket from "ws";
import type { MinimalWebSocket, WebSocketFactory } from "../push.js";

export const nodeWebSocket: WebSocketFactory = (url) => new WebSocket(url) as unknown as MinimalWebSocket;
