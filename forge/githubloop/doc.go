// Package githubloop lets GitHub pull requests drive previews: an
// http.Handler receives GitHub's webhooks (signature checked, deliveries
// deduplicated, bodies bounded), a per-PR Queue coalesces them into Ups
// and Downs numbered in delivery order (UpRequest.Generation), a
// PipelineRunner checks the PR head out with the git binary and runs the
// preview.Pipeline, and a Reporter keeps one comment per PR and a GitHub
// Deployment with statuses up to date (GitHubReporter over go-github).
//
// Generations come from one counter per repository, persisted in a file
// in the daemon's home and written before a delivery is acknowledged, so
// the order GitHub sent deliveries in is the order of the previews, also
// across restarts. (Deriving them from the stored route's generation + 1
// would need a read of the router on every delivery, and two deliveries
// read at once would get the same number.) An `up` or `down` run by hand
// on a PR the daemon manages raises the route past the counter; the
// daemon's next Up of that PR then fails as superseded until a later
// delivery's number is past it.
//
// What survives a daemon restart: the generation counter, the per-PR
// checkouts (under the daemon's home), and whatever the providers hold
// under ownership labels. Queue.Reconcile re-derives the work from GitHub's
// open pull requests and the labelled previews, on start and on a
// schedule: an open PR whose preview is missing or serves another commit
// is built again (a build a killed daemon left in progress is reported
// failed on the PR first: its deployment gets an error status), a PR that
// is no longer open or unknown to GitHub (an orphan), or no longer passes
// the Policy, is taken down, and so is an open PR's preview past its
// glimpse.yaml ttl, and (with Queue.StaleAfter) one without a push or a
// request, static ones included, for that long: preview.Lifetime.Expired,
// the rule `glimpse gc` applies too (the PR's comment says why and how
// to bring it back). Pending work that was only in memory is
// not replayed as such; it is recomputed. Reconcile needs a Reporter (the
// GitHub token).
//
// A "/glimpse up" comment on a PR by its repository's owner, a member or a
// collaborator builds the PR's head again (CommandUp), e.g. after
// StaleAfter took the preview down.
//
// The API is reached with a token, or as a GitHub App installation
// (AppAuth: an RS256 JWT exchanged for installation tokens, cached and
// refreshed before they expire, a 401 retried once with a new one).
// githubfake is the fake of GitHub's REST API the tests run against.
//
// `glimpse notify` (the CI path) reports through GitHubReporter from a
// job: a success or failure finds the deployment an earlier
// in_progress made, in another process, by its commit.
//
// Fork PRs are not built unless Policy.AllowForks; when they are, the
// providers section of their glimpse.yaml is ignored, so that a fork
// cannot point the daemon's credentials at servers of its choosing.
package githubloop
