// Package dockerbuild is the docker:// preview.Builder: it builds a
// function's Docker build context (a directory with a Dockerfile) on a
// Docker engine through the Engine API, using the engine's classic builder
// (every engine has it and it needs no BuildKit session), and pushes the
// result to any OCI registry with go-containerregistry. The context is
// packed here, honouring .dockerignore with the docker CLI's rules; build
// arguments, target stage, platform and network mode are options; the image
// is labelled with Glimpse's ownership labels and the source hash; every
// line of the build log goes to the build's progress.
//
// Like ko://, images are keyed by a source hash (see Builder.Build) and kept
// under the tag src-<hash16>, so an unchanged context is never sent to the
// engine: Build then only adds the preview's tag (ociregistry.Images holds
// that logic for both builders).
//
// The image is pushed by the client, not by the engine: Build exports it
// from the engine (the images/get endpoint) and pushes it with the
// credentials Glimpse uses everywhere (GLIMPSE_REGISTRY_USERNAME and
// GLIMPSE_REGISTRY_PASSWORD, the Docker configuration and its credential
// helpers, GITHUB_TOKEN for ghcr.io; see ociregistry.Keychain). So a remote
// engine, or one inside a VM, needs neither a route to the registry nor
// registry settings of its own, and a registry on 127.0.0.1 works wherever
// the engine runs. The cost is one export of the image per build: for small
// images (a static binary FROM scratch) a few milliseconds, for large base
// images the time to read and compress their layers once.
//
// URL, with every query parameter optional and repeatable only for arg:
//
//	docker://                          the engine at $DOCKER_HOST, else unix:///var/run/docker.sock
//	docker:///path/to/docker.sock      a Unix socket
//	docker://unix:///path/docker.sock  the same, written as DOCKER_HOST would be
//	docker://host:2376                 tcp://host:2376 (TLS with DOCKER_CERT_PATH)
//	docker://tcp://host:2376           the same
//	  ?dockerfile=build/Dockerfile     the Dockerfile inside the context (default Dockerfile)
//	  &target=prod                     the stage to build
//	  &platform=linux/arm64            the image platform (default: the engine's)
//	  &arg=VERSION=1.2&arg=TOKEN       build arguments; a bare NAME takes its value from the environment
//	  &network=none                    network mode of RUN steps (default: the engine's)
//	  &insecure=true                   plain HTTP to every registry (loopback ones always)
//	  &template=python3                a faas-cli template: PROJECT/template/python3 (see below)
//	  &project=/abs/dir                faas-cli's working directory: holds template/ and the copy paths
//	  &copy=common&copy=lib/x          paths under project copied into the handler folder (stack.yml configuration.copy)
//	  &option=dev                      a template.yml build_options entry: its packages go into ADDITIONAL_PACKAGE
//
// With template, the source directory is a faas-cli handler and the build
// context is laid out as faas-cli build lays out build/<fn>/: the template
// directory, the handler's entries (except build/ and template/) in the
// template's handler_folder (default function/), the copy paths under it,
// filtered by the assembled context's .dockerignore. template.yml is read
// for handler_folder and build_options; language, fprocess and
// welcome_message are accepted; mount_ssh: true (BuildKit only) and any
// other key are one-line InvalidArgument errors from Build, before anything
// is sent or pushed. Without template, copy adds its paths to the handler's
// own context, as faas-cli does for lang: dockerfile.
package dockerbuild
