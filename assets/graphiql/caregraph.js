// caregraph's GraphiQL page: mounts the explorer with a fetcher that sends queries and
// mutations to /graphql over HTTP and runs subscriptions over graphql-ws on the same URL,
// both with the token from the headers editor. Loaded as a file (never inline) so the page's
// Content-Security-Policy can refuse every inline script.
(function () {
  "use strict";

  var ENDPOINT = "/graphql";
  // The headers editor's first value; a request carrying it unchanged goes without a token.
  var PLACEHOLDER = "Bearer <paste a token from register or login>";

  var DEFAULT_HEADERS = JSON.stringify({ Authorization: PLACEHOLDER }, null, 2);

  var DEFAULT_QUERY = [
    "# caregraph's API explorer. Queries and mutations go to /graphql over HTTP;",
    "# subscriptions run over graphql-ws on the same URL. Both send the token from",
    "# the Headers tab below.",
    "#",
    "# Get a token by signing up (or with `login(input: { email, password })`):",
    "#",
    "#   mutation {",
    "#     register(input: { email: \"rita@example.com\", password: \"correct horse\",",
    "#                       displayName: \"Rita\", role: CARE_RECIPIENT }) { token }",
    "#   }",
    "#",
    "# then put it in the Headers tab: { \"Authorization\": \"Bearer <token>\" }",
    "",
    "{",
    "  me {",
    "    id",
    "    displayName",
    "    role",
    "  }",
    "  unreadNotificationCount",
    "}",
    "",
  ].join("\n");

  // The headers editor's headers without the placeholder token.
  function requestHeaders(headers) {
    var out = {};
    Object.keys(headers || {}).forEach(function (name) {
      var value = headers[name];
      if (name.toLowerCase() === "authorization" && value === PLACEHOLDER) {
        return;
      }
      out[name] = value;
    });
    return out;
  }

  function authorization(headers) {
    var found = null;
    Object.keys(headers).forEach(function (name) {
      if (name.toLowerCase() === "authorization") {
        found = String(headers[name]);
      }
    });
    return found;
  }

  // One graphql-ws client per Authorization value: a new token opens a new socket, since
  // the server reads the token once, from connection_init.
  var socket = { client: null, authorization: undefined };

  function socketFor(auth) {
    if (socket.client && socket.authorization === auth) {
      return socket.client;
    }
    if (socket.client) {
      socket.client.dispose();
    }
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + ENDPOINT;
    socket.authorization = auth;
    socket.client = graphqlWs.createClient({
      url: url,
      lazy: true,
      retryAttempts: 0,
      connectionParams: auth === null ? {} : { Authorization: auth },
    });
    return socket.client;
  }

  // Read from the text sent, not the editor's parsed document, which may lag behind it.
  function isSubscription(params) {
    var graphql = GraphiQL.GraphQL;
    try {
      var operation = graphql.getOperationAST(
        graphql.parse(params.query),
        params.operationName || null,
      );
      return Boolean(operation) && operation.operation === "subscription";
    } catch (error) {
      return false;
    }
  }

  // What GraphiQL shows for a failed subscription: the GraphQL errors, or why the socket closed.
  function subscriptionError(error) {
    if (Array.isArray(error)) {
      return { errors: error };
    }
    if (error && typeof error.code === "number") {
      return new Error("the socket closed: " + error.code + " " + (error.reason || ""));
    }
    return error instanceof Error ? error : new Error(String(error));
  }

  function subscribe(params, headers) {
    var client = socketFor(authorization(headers));
    return {
      subscribe: function (observer) {
        var dispose = client.subscribe(
          { query: params.query, variables: params.variables, operationName: params.operationName },
          {
            next: function (result) {
              observer.next(result);
            },
            error: function (error) {
              var reported = subscriptionError(error);
              if (reported instanceof Error) {
                observer.error(reported);
              } else {
                observer.next(reported);
                observer.complete();
              }
            },
            complete: function () {
              observer.complete();
            },
          },
        );
        return { unsubscribe: dispose };
      },
    };
  }

  function post(params, headers) {
    var sent = Object.assign(
      { "Content-Type": "application/json", Accept: "application/json" },
      headers,
    );
    return fetch(ENDPOINT, {
      method: "POST",
      headers: sent,
      body: JSON.stringify(params),
      credentials: "omit",
    }).then(function (response) {
      return response.json();
    });
  }

  function fetcher(params, options) {
    var headers = requestHeaders(options && options.headers);
    if (isSubscription(params)) {
      return subscribe(params, headers);
    }
    return post(params, headers);
  }

  var container = document.getElementById("graphiql");
  document.body.style.margin = "0";
  container.style.height = "100vh";
  ReactDOM.createRoot(container).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: DEFAULT_QUERY,
      defaultHeaders: DEFAULT_HEADERS,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      defaultEditorToolsVisibility: "headers",
    }),
  );
})();
