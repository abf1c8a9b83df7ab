// Package deploy holds what runs llmfleet outside `go run`: the container
// image (Dockerfile), Redis's configuration (redis.conf), the Kubernetes
// manifests (kubernetes/) and the compose healthcheck probe (healthcheck/);
// docker-compose.yml and .env.example sit at the repository root.
//
// There is no Go code here. The package's tests are what keeps the files
// honest where no Docker engine or cluster is available: they run the
// Dockerfile's build commands with the local toolchain, load the compose file
// with compose-go, start redis-server with redis.conf and the compose
// command line, and parse every manifest, checking each against the code it
// deploys (flags, ports, health paths, asynq's key for the queue).
package deploy
