# git, for forge/githubloop's and cmd/glimpse's GitHub loop tests: the
# loop checks pull request heads out with the git binary (a real local
# repository stands in for GitHub's remote). Installed only when missing;
# the tests fail under CI without it.
if ! command -v git >/dev/null 2>&1; then
  step "installing git"
  apt_install git ca-certificates
fi
