// Package redisconn turns a REDIS_URL into the go-redis client that asynq,
// the checkpoint, the breaker and the rate limiter share.
//
// URLs are parsed with go-redis rather than asynq's ParseRedisURI, which
// drops an ACL username and applies a Sentinel URL's password to the
// sentinels only: asynq is handed the client instead
// (asynq.NewClientFromRedisClient, NewServerFromRedisClient and
// NewInspectorFromRedisClient).
//
// # URL forms
//
// One server, plain or TLS (go-redis's own form):
//
//	redis://[[USER]:PASSWORD@]HOST[:6379][/DB][?OPTION=VALUE...]
//	rediss://[[USER]:PASSWORD@]HOST[:6379][/DB][?OPTION=VALUE...]
//
// Sentinel: the sentinels' addresses, then the master's name, then the
// database. USER and PASSWORD are the master's (ACL user or requirepass);
// sentinels protected by their own password take it from sentinel_password
// (and sentinel_username for an ACL user). With rediss-sentinel:// both the
// sentinels and the master are reached over TLS.
//
//	redis-sentinel://[[USER]:PASSWORD@]HOST1[:26379][,HOST2[:26379]...]/MASTER[/DB][?sentinel_password=P&sentinel_username=U&OPTION=VALUE...]
//	rediss-sentinel://...
//
// Cluster: any number of seed nodes (the rest is discovered); a cluster has
// only database 0, so there is no path.
//
//	redis-cluster://[[USER]:PASSWORD@]HOST1[:6379][,HOST2[:6379]...][?OPTION=VALUE...]
//	rediss-cluster://...
//
// OPTIONs are go-redis's URL options (dial_timeout, read_timeout,
// pool_size, max_retries, client_name, skip_verify with TLS, ...); an
// unknown option is an error. A password with characters that have a
// meaning in URLs (/ ? # @ : % and spaces) must be percent-encoded
// (e.g. with `python3 -c 'import urllib.parse,sys;print(urllib.parse.quote(sys.argv[1],safe=""))' PASSWORD`),
// or generated URL-safe in the first place (`openssl rand -hex 32`).
//
// Errors say which part of the URL is wrong and show the URL with every
// password masked (Redact); a password never appears in an error or a log.
//
// # Redis Cluster and asynq
//
// asynq supports Cluster because every key of one queue carries the queue
// name as a hash tag, asynq:{QUEUE}:... (QueueKeyPrefix in asynq's
// internal/base/base.go): its Lua scripts (enqueue, dequeue, retry,
// archive, lease recovery) only ever touch keys of one queue, which share a
// slot. What needs care:
//
//   - One queue is one slot, so one node: the whole backlog of a queue and
//     all its traffic land on a single shard. Spread heavy work over several
//     queues (producer --queue, worker --queues a=1,b=1) to use more nodes.
//   - Keys outside a queue (asynq:queues, asynq:servers, asynq:workers) are
//     written with separate commands, never in one script with queue keys;
//     server and worker info keys share the {host:pid:id} tag.
//   - Cross-queue operations (asynqmon listing all queues, Inspector.Queues)
//     fan out to every node: fine for monitoring, not for hot paths.
//   - asynq.Inspector's ClusterKeySlot and ClusterNodes say where a queue
//     lives.
//
// llmfleet's own keys follow the same rule: every key of one job carries the
// {JOB} tag (package checkpoint), so each item transition, one Lua script
// over the job's keys, runs on one slot; the job index llmfleet:jobs is the
// only key outside a job's slot and is only touched by single commands. The
// breaker ({ENDPOINT}) and the rate limiter ({PROVIDER}) keep their keys in
// one slot per family likewise. Pipelines are plain (never MULTI), which
// go-redis splits per node.
package redisconn
