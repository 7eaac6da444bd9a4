-- 0001: initial schema: workflow versions, nodes, runs, the step journal, requests, logs.

CREATE TABLE nodes (
	id TEXT NOT NULL, 
	hostname TEXT NOT NULL, 
	pid INTEGER NOT NULL, 
	started_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	heartbeat_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id)
);

CREATE TABLE schema_migrations (
	version INTEGER NOT NULL, 
	name TEXT NOT NULL, 
	applied_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (version)
);

CREATE TABLE workflow_versions (
	id SERIAL NOT NULL, 
	workspace TEXT NOT NULL, 
	workflow TEXT NOT NULL, 
	number INTEGER NOT NULL, 
	files JSONB NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_workflow_versions_number UNIQUE (workspace, workflow, number)
);

CREATE TABLE runs (
	id TEXT NOT NULL, 
	workspace TEXT NOT NULL, 
	workflow TEXT NOT NULL, 
	version_id INTEGER NOT NULL, 
	version INTEGER NOT NULL, 
	status TEXT NOT NULL, 
	trigger TEXT NOT NULL, 
	test BOOLEAN NOT NULL, 
	input JSONB, 
	output JSONB, 
	error JSONB, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	started_at TIMESTAMP WITH TIME ZONE, 
	finished_at TIMESTAMP WITH TIME ZONE, 
	deadline_at TIMESTAMP WITH TIME ZONE, 
	node_id TEXT, 
	parent_run_id TEXT, 
	parent_seq INTEGER, 
	idempotency_key TEXT, 
	attempts INTEGER NOT NULL, 
	crashes INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_status CHECK (status IN ('queued', 'running', 'waiting', 'succeeded', 'failed', 'cancelled')), 
	CONSTRAINT ck_trigger CHECK (trigger IN ('api', 'webhook', 'schedule', 'test', 'retry', 'child', 'local')), 
	CONSTRAINT uq_runs_idempotency_key UNIQUE (workspace, workflow, idempotency_key), 
	FOREIGN KEY(version_id) REFERENCES workflow_versions (id)
);

CREATE INDEX ix_runs_active_deadline ON runs (deadline_at) WHERE status IN ('queued', 'running', 'waiting') AND deadline_at IS NOT NULL;

CREATE INDEX ix_runs_node ON runs (node_id);

CREATE INDEX ix_runs_parent ON runs (parent_run_id);

CREATE INDEX ix_runs_queued ON runs (created_at) WHERE status = 'queued';

CREATE INDEX ix_runs_workflow_created ON runs (workspace, workflow, created_at);

CREATE TABLE logs (
	id SERIAL NOT NULL, 
	run_id TEXT NOT NULL, 
	ts TIMESTAMP WITH TIME ZONE NOT NULL, 
	level TEXT NOT NULL, 
	message TEXT NOT NULL, 
	fields JSONB NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_level CHECK (level IN ('debug', 'info', 'warning', 'error')), 
	FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);

CREATE INDEX ix_logs_run ON logs (run_id, id);

CREATE TABLE requests (
	id TEXT NOT NULL, 
	workspace TEXT NOT NULL, 
	workflow TEXT NOT NULL, 
	run_id TEXT NOT NULL, 
	seq INTEGER NOT NULL, 
	request_name TEXT NOT NULL, 
	message TEXT NOT NULL, 
	resolutions JSONB NOT NULL, 
	metadata JSONB NOT NULL, 
	to_users JSONB NOT NULL, 
	to_groups JSONB NOT NULL, 
	status TEXT NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	expires_at TIMESTAMP WITH TIME ZONE, 
	on_timeout TEXT, 
	resolution TEXT, 
	payload JSONB, 
	resolved_by TEXT, 
	resolved_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_status CHECK (status IN ('pending', 'resolved', 'expired', 'cancelled')), 
	FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);

CREATE INDEX ix_requests_pending_expiry ON requests (expires_at) WHERE status = 'pending' AND expires_at IS NOT NULL;

CREATE INDEX ix_requests_run ON requests (run_id);

CREATE INDEX ix_requests_workspace_status ON requests (workspace, status, created_at);

CREATE TABLE steps (
	run_id TEXT NOT NULL, 
	seq INTEGER NOT NULL, 
	kind TEXT NOT NULL, 
	name TEXT NOT NULL, 
	status TEXT NOT NULL, 
	input JSONB, 
	output JSONB, 
	error JSONB, 
	handle JSONB, 
	attempts INTEGER NOT NULL, 
	started_at TIMESTAMP WITH TIME ZONE, 
	finished_at TIMESTAMP WITH TIME ZONE, 
	done_order INTEGER, 
	wake_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (run_id, seq), 
	CONSTRAINT ck_kind CHECK (kind IN ('query', 'step', 'http', 'request', 'sleep', 'value', 'child')), 
	CONSTRAINT ck_status CHECK (status IN ('running', 'waiting', 'succeeded', 'failed')), 
	FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);

CREATE INDEX ix_steps_pending_wake ON steps (wake_at) WHERE status = 'waiting' AND wake_at IS NOT NULL;

CREATE TABLE request_assignees (
	request_id TEXT NOT NULL, 
	kind TEXT NOT NULL, 
	name TEXT NOT NULL, 
	PRIMARY KEY (request_id, kind, name), 
	CONSTRAINT ck_kind CHECK (kind IN ('user', 'group')), 
	FOREIGN KEY(request_id) REFERENCES requests (id) ON DELETE CASCADE
);

CREATE INDEX ix_request_assignees_name ON request_assignees (kind, name);
