// Apollo Client against caregraph: HTTP with automatic persisted queries, graphql-ws for
// subscriptions. A care recipient and a caregiver sign up, book, and open the booking's
// chat; the caregiver follows it live, loses the socket, and resumes after the last message
// she has. Usage: CAREGRAPH_URL=http://127.0.0.1:8000 node apollo.mjs (exit 0: all seen)
import { createHash, randomUUID } from "node:crypto";
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { isSubscriptionOperation } from "@apollo/client/utilities";
import { createClient } from "graphql-ws";
import WebSocket from "ws"; // Node before 22 only; browsers have WebSocket built in

const url = new URL("/graphql", process.env.CAREGRAPH_URL ?? "http://127.0.0.1:8000");
const fail = (why) => { console.error(`apollo: FAILED: ${why}`); process.exit(1); };
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

// Each HTTP request: its method, whether it carried only the query's hash (APQ), and
// whether the server knew that hash.
const requests = [];
const fetchAndLog = async (uri, init) => {
  const hashOnly = init.method === "GET"
    ? !new URL(uri).searchParams.has("query") : !("query" in JSON.parse(init.body));
  const response = await fetch(uri, init);
  const known = !(await response.clone().text()).includes("PERSISTED_QUERY_NOT_FOUND");
  requests.push({ method: init.method, hashOnly, known });
  return response;
};
const sha256 = (text) => createHash("sha256").update(text).digest("hex");

const run = randomUUID().slice(0, 8);
const carol = { email: `carol-${run}@example.com`, password: "correct horse" };
let logins = 0, socket = null;
const ws = createClient({
  url: url.href.replace(/^http/, "ws"),
  webSocketImpl: WebSocket,
  // Called on every (re)connect: log in again, so a reconnect never sends a stale token.
  connectionParams: async () => {
    logins += 1;
    const { data } = await client.mutate({ mutation: LOGIN, variables: { input: carol } });
    return { Authorization: `Bearer ${data.login.token}` };
  },
});
ws.on("connected", (s) => { socket = s; });
ws.on("closed", () => { socket = null; });

const client = new ApolloClient({
  cache: new InMemoryCache(),
  link: ApolloLink.split(
    ({ query }) => isSubscriptionOperation(query),
    new GraphQLWsLink(ws),
    new PersistedQueryLink({ sha256, useGETForHashedQueries: true })
      .concat(new HttpLink({ uri: url.href, fetch: fetchAndLog })),
  ),
});
const as = (token) => ({ headers: { Authorization: `Bearer ${token}` } });
const mutate = async (mutation, variables, token) =>
  (await client.mutate({ mutation, variables, context: token && as(token) })).data;

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
const history = async () => (await client.query({ query: HISTORY, variables: { id: sessionId },
  context: as(carolAccount.token), fetchPolicy: "network-only" })).data.chatSession.messages.edges;
waitingFor = "the chat's history";
seen.push(...(await history()).map((edge) => ({ ...edge.node, cursor: edge.cursor })));
let subscription, arrived = () => {};
const follow = () => {
  subscription = client
    .subscribe({ query: MESSAGE_ADDED, variables: { sessionId, after: seen.at(-1).cursor } })
    .subscribe({
      next: ({ data, error }) => {
        if (error) fail(`messageAdded: ${error.message}`);
        seen.push(data.messageAdded);
        arrived();
      },
      error: (error) => fail(`messageAdded: ${error.message}`),
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
//    agrees, and the second time, the server knew the query by its hash alone (GET).
stopDropping();
subscription.unsubscribe();
await ws.dispose();
const seqs = seen.map((m) => m.seq).join(",");
const stored = (await history()).map((edge) => edge.node.seq).join(",");
if (seqs !== "1,2,3,4") fail(`expected messages 1,2,3,4 once each, in order; saw ${seqs}`);
if (stored !== seqs) fail(`the history has ${stored}, the subscription gave ${seqs}`);
if (logins < 2) fail(`expected a login per connection, saw ${logins}`);
const byHash = requests.filter((r) => r.hashOnly && r.known);
if (!byHash.some((r) => r.method === "GET")) fail("no persisted query was answered by GET");
console.log(`apollo: ok: messages ${seqs} once each across a reconnect, ${logins} logins, ` +
  `${byHash.length} of ${requests.length} requests answered from their hash alone`);
process.exit(0);
