package main

// note is what the reference says of a key beyond its Go type: the words
// for keys whose Go doc comment speaks of Go (package preview's types are
// documented for library users), the defaults that code outside
// Spec.Defaults applies, and an example. A key with neither a note's Doc
// nor a doc comment fails the test; so does a note for a key that does
// not exist, an example of the wrong type, or a Default for a key whose
// default Spec.Defaults computes.
type note struct {
	Doc string
	// DefaultValue is a literal default as YAML (for the schema too);
	// Default is prose shown after it, or alone.
	DefaultValue string
	Default      string
	// Example is a value as YAML; it must decode into the key's type.
	Example  string
	Required bool
}

var notes = map[string]note{
	"app": {
		Doc:      "App name, a DNS label (lower case letters, digits, `-`). Function `<app>-pr-<N>`, host `pr-<N>.<app>.<domain>`.",
		Default:  "(required)",
		Example:  "hello",
		Required: true,
	},
	"function": {
		Doc:     "The backend function. Without it the app is static only, and the next `up` removes a function an earlier spec had.",
		Default: "none",
		Example: "{source: function, routes: [/graphql]}",
	},
	"function.source": {
		Doc:     "Directory the builder builds: a Go main package (or an OpenFaaS `golang-middleware`/`golang-http` handler) for `ko://`, a Docker context for `docker://`.",
		Example: "api",
	},
	"function.routes": {
		Doc:     "Path prefixes the edge sends to the function; everything else is static. `/api/` matches everything below it; `/graphql` matches `/graphql` and `/graphql/x`, not `/graphqlx`.",
		Example: "[/graphql, /api/]",
	},
	"function.env": {
		Doc:     "Extra environment. `GLIMPSE_APP`, `GLIMPSE_PR`, `GLIMPSE_COMMIT`, `PORT` and `HOST` are Glimpse's and win.",
		Default: "none",
		Example: "{LOG_LEVEL: debug}",
	},
	"function.labels": {
		Doc:     "Labels on the deployed function; keys under `glimpse.dev/` are reserved.",
		Default: "none",
		Example: "{team: web}",
	},
	"function.annotations": {
		Doc:     "Annotations on the deployed function; keys under `glimpse.dev/` are reserved.",
		Default: "none",
		Example: "{owner: web-team}",
	},
	"function.stack": {
		Doc:     "An OpenFaaS `stack.yml`: its handler (as `source`), `lang` (the build), environment, `environment_file` and `fprocess` are used.",
		Default: "none",
		Example: "stack.yml",
	},
	"function.stackFunction": {
		Doc:     "Which function of `stack` to deploy.",
		Default: "the function named like the app, or the only one",
		Example: "hello",
	},
	"function.secrets": {
		Doc:     "Names of secrets the function runtime already holds (made with `faas-cli secret create` or the gateway's `/system/secrets`); the function reads each from `/var/openfaas/secrets/<name>`. Glimpse never sees their values.",
		Default: "none",
		Example: "[stripe-key]",
	},
	"function.database": {
		Doc:     "A database of its own for each preview of the app, on the database provider; the function finds its connection string in a secret file.",
		Default: "none",
		Example: "{migrations: db/migrations, seed: db/seed}",
	},
	"function.database.template":   {Default: "none", Example: "shop_staging"},
	"function.database.migrations": {Default: "none", Example: "db/migrations"},
	"function.database.seed":       {Default: "none", Example: "db/seed"},
	"function.database.readOnly":   {DefaultValue: "false", Example: "true"},
	"function.database.shared":     {Default: "none", Example: "catalog"},
	"function.resources": {
		Doc:     "CPU and memory of each replica, in Kubernetes quantity syntax (checked at load: a bad quantity or a request above its limit is an error). Applied by the kubefaas (container requests/limits) and openfaas (the deploy's requests/limits) runtimes; ignored by the local runtime. With `function.stack`, the stack file's `limits` and `requests` fill the fields left empty here.",
		Default: "none (the runtime's or the namespace's LimitRange defaults)",
		Example: "{requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 500m, memory: 128Mi}}",
	},
	"function.resources.requests":        {Default: "none", Example: "{cpu: 100m, memory: 64Mi}"},
	"function.resources.requests.cpu":    {Default: "none", Example: "100m"},
	"function.resources.requests.memory": {Default: "none", Example: "64Mi"},
	"function.resources.limits":          {Default: "none", Example: "{cpu: 500m, memory: 128Mi}"},
	"function.resources.limits.cpu":      {Default: "none", Example: "500m"},
	"function.resources.limits.memory":   {Default: "none", Example: "128Mi"},
	"assets": {
		Doc:     "Static files.",
		Default: "none",
		Example: "{dir: public}",
	},
	"assets.dir": {
		Doc:     "Directory published, content-addressed (only new files are uploaded).",
		Example: "dist",
	},
	"idle": {
		Doc:     "Scale to zero for this app.",
		Default: "controller defaults",
		Example: "{after: 15m}",
	},
	"idle.after": {
		Doc:     "How long without a request before the preview is scaled to zero, a Go duration.",
		Default: "`15m` (`glimpse serve --idle-after`)",
		Example: "30m",
	},
	"idle.alwaysOn": {
		Doc:          "Keep one replica; the app never sleeps.",
		DefaultValue: "false",
		Example:      "true",
	},
	"ttl": {
		Doc:     "How long a preview may live after its last deploy (its last push): whole numbers with the units d, h, m, s (`7d`, `36h`, `1d12h`). `glimpse gc` (and the daemon's reconcile) take older previews down; read from the route's `glimpse.dev/ttl` and `glimpse.dev/deployed-at` labels.",
		Default: "none (no limit)",
		Example: "7d",
	},
	"providers": {
		Default: "the local stack",
		Example: "{builder: ko://, domain: previews.example.com}",
	},
	"providers.builder":  {DefaultValue: "ko://", Example: "docker://unix:///var/run/docker.sock"},
	"providers.registry": {Default: "the local stack's", Example: "oci://ghcr.io/acme/previews"},
	"providers.runtime":  {Default: "the local stack's", Example: "openfaas://gateway.openfaas:8080?namespace=openfaas-fn"},
	"providers.assets":   {Default: "the local stack's", Example: "s3://previews?region=eu-west-1"},
	"providers.router":   {Default: "the local stack's", Example: "edge://edge.internal:8080"},
	"providers.dns":      {Default: "none (wildcard record)", Example: "rfc2136://ns1.example.com:53/previews.example.com?target=edge.example.com"},
	"providers.cdn":      {Default: "none", Example: "cloudflare://example.com"},
	"providers.database": {Default: "none", Example: "postgres://db.internal:5432/postgres"},
	"providers.domain":   {DefaultValue: "localhost", Example: "previews.example.com"},
	"providers.owner":    {DefaultValue: "default", Example: "team-web"},
}
