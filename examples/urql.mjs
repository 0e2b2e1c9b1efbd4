// urql against caregraph, with its default exchanges (queries go as GET when they fit in
// the URL) and graphql-ws for subscriptions. A care recipient and a caregiver sign up, book,
// and open the booking's chat; the caregiver follows it live, loses the socket, and resumes
// after the last message she has. Usage: CAREGRAPH_URL=http://127.0.0.1:8000 node urql.mjs
import { randomUUID } from "node:crypto";
import { Client, cacheExchange, fetchExchange, gql, subscriptionExchange } from "@urql/core";
import { createClient } from "graphql-ws";
import WebSocket from "ws"; // Node before 22 only; browsers have WebSocket built in

const url = new URL("/graphql", process.env.CAREGRAPH_URL ?? "http://127.0.0.1:8000");
const fail = (why) => { console.error(`urql: FAILED: ${why}`); process.exit(1); };
process.on("uncaughtException", (error) => fail(error.message));
const seen = []; // the chat's messages, as Carol received them
let waitingFor = "the sign-ups";
setTimeout(() => fail(`timed out after 20 s waiting for ${waitingFor}; ` +
  `messages seen: ${seen.map((m) => m.seq).join(",") || "none"}`), 20_000).unref();

const REGISTER = gql`mutation Register($input: RegisterInput!) { register(input: $input) { token user { id } } }`;
const LOGIN = gql`mutation Login($input: LoginInput!) { login(input: $input) { token } }`;
const BOOK = gql`mutation Book($input: CreateBookingInput!) { createBooking(input: $input) { id } }`;
const ACCEPT = gql`mutation Accept($id: UUID!) { acceptBooking(id: $id) { id status } }`;
const ENABLE_CHAT = gql`mutation EnableChat($id: UUID!) { enableChat(bookingId: $id) { id } }`;
const SEND = gql`mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { id seq } }`;
const HISTORY = gql`query History($id: UUID!) { chatSession(id: $id) { id
  messages(last: 20) { edges { cursor node { id seq body } } } } }`;
const MESSAGE_ADDED = gql`subscription MessageAdded($sessionId: UUID!, $after: String) {
  messageAdded(sessionId: $sessionId, after: $after) { id seq body cursor } }`;

// The method of each HTTP request, to show that queries went by GET.
const methods = [];
const fetchAndLog = (uri, init) => { methods.push(init.method); return fetch(uri, init); };

const run = randomUUID().slice(0, 8);
const carol = { email: `carol-${run}@example.com`, password: "correct horse" };
let logins = 0, socket = null;
const ws = createClient({
  url: url.href.replace(/^http/, "ws"),
  webSocketImpl: WebSocket,
  // Called on every (re)connect: log in again, so a reconnect never sends a stale token.
  connectionParams: async () => {
    logins += 1;
    const { login } = await request(client.mutation(LOGIN, { input: carol }));
    return { Authorization: `Bearer ${login.token}` };
  },
});
ws.on("connected", (s) => { socket = s; });
ws.on("closed", () => { socket = null; });

const client = new Client({
  url: url.href,
  fetch: fetchAndLog,
  exchanges: [cacheExchange, fetchExchange, subscriptionExchange({
    forwardSubscription: (operation) => ({
      subscribe: (sink) => ({ unsubscribe: ws.subscribe({ ...operation, query: operation.query ?? "" }, sink) }),
    }),
  })],
});
const as = (token) => ({ fetchOptions: { headers: { Authorization: `Bearer ${token}` } } });
const request = async (operation) => {
  const { data, error } = await operation.toPromise();
  if (error) fail(error.message);
  return data;
};
const mutate = (mutation, variables, token) =>
  request(client.mutation(mutation, variables, token && as(token)));

// 1. Sign up both sides, book, accept, open the chat; Rita writes first.
const signUp = async (email, displayName, role) =>
  (await mutate(REGISTER, { input: { email, password: "correct horse", displayName, role } })).register;
const rita = await signUp(`rita-${run}@example.com`, "Rita", "CARE_RECIPIENT");
const carolAccount = await signUp(carol.email, "Carol", "CAREGIVER");
const startsAt = new Date(Date.now() + 48 * 3600_000);
const endsAt = new Date(startsAt.getTime() + 2 * 3600_000);
const { createBooking: booking } = await mutate(BOOK, { input: { caregiverId: carolAccount.user.id,
  startsAt: startsAt.toISOString(), endsAt: endsAt.toISOString() } }, rita.token);
await mutate(ACCEPT, { id: booking.id }, carolAccount.token);
const sessionId = (await mutate(ENABLE_CHAT, { id: booking.id }, rita.token)).enableChat.id;
const send = (body) =>
  mutate(SEND, { input: { sessionId, body, clientMessageId: randomUUID() } }, rita.token);
await send("Hello Carol!");

// 2. Carol opens the chat screen: the history, then live messages after its last one.
const history = async () => (await request(client.query(HISTORY, { id: sessionId },
  { ...as(carolAccount.token), requestPolicy: "network-only" }))).chatSession.messages.edges;
waitingFor = "the chat's history";
seen.push(...(await history()).map((edge) => ({ ...edge.node, cursor: edge.cursor })));
let subscription, arrived = () => {};
const follow = () => {
  subscription = client
    .subscription(MESSAGE_ADDED, { sessionId, after: seen.at(-1).cursor })
    .subscribe(({ data, error }) => {
      if (error) fail(`messageAdded: ${error.message}`);
      seen.push(data.messageAdded);
      arrived();
    });
};
// When the socket closes, drop the subscription: graphql-ws would replay it from the cursor
// it started with. Subscribing again after the last message seen resumes with no gap and no
// duplicate.
const stopDropping = ws.on("closed", () => subscription.unsubscribe());
follow();
const waitFor = (seq) => new Promise((resolve) => {
  waitingFor = `message ${seq} on messageAdded`;
  arrived = () => seen.at(-1).seq >= seq && resolve();
  arrived();
});

// 3. A message sent over HTTP arrives on the subscription.
await send("Can you come at nine?");
await waitFor(2);

// 4. The socket drops; Rita writes while Carol is offline; Carol resubscribes, graphql-ws
//    opens a new socket (a fresh login), and the server sends the missed message first.
socket.terminate();
while (socket) await new Promise((resolve) => setTimeout(resolve, 10));
await send("I will leave the door open.");
follow();
await waitFor(3);
await send("See you tomorrow."); // live again: a duplicate would arrive before this one
await waitFor(4);

// 5. Check: each message once, in order, across two connections and logins; the history
//    agrees, and the queries went by GET.
stopDropping();
subscription.unsubscribe();
await ws.dispose();
const seqs = seen.map((m) => m.seq).join(",");
const stored = (await history()).map((edge) => edge.node.seq).join(",");
if (seqs !== "1,2,3,4") fail(`expected messages 1,2,3,4 once each, in order; saw ${seqs}`);
if (stored !== seqs) fail(`the history has ${stored}, the subscription gave ${seqs}`);
if (logins < 2) fail(`expected a login per connection, saw ${logins}`);
if (methods.filter((m) => m === "GET").length !== 2) fail(`the two queries were not GETs: ${methods}`);
console.log(`urql: ok: messages ${seqs} once each across a reconnect, ${logins} logins, ` +
  `${methods.length} requests (the queries by GET)`);
process.exit(0);
