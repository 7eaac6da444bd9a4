-- 0002: identity and tenancy (workspaces, users, members, groups, API keys, sessions) and workflow drafts

CREATE TABLE workspaces (
	slug TEXT NOT NULL, 
	name TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (slug)
);

CREATE TABLE users (
	id INTEGER NOT NULL, 
	email TEXT NOT NULL, 
	name TEXT NOT NULL, 
	password_hash TEXT, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_users_email UNIQUE (email)
);

CREATE TABLE members (
	workspace TEXT NOT NULL, 
	user_id INTEGER NOT NULL, 
	role TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (workspace, user_id), 
	CONSTRAINT ck_role CHECK (role IN ('viewer', 'operator', 'developer', 'admin')), 
	FOREIGN KEY(workspace) REFERENCES workspaces (slug) ON DELETE CASCADE, 
	FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE INDEX ix_members_user ON members (user_id);

CREATE TABLE groups (
	workspace TEXT NOT NULL, 
	name TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (workspace, name), 
	FOREIGN KEY(workspace) REFERENCES workspaces (slug) ON DELETE CASCADE
);

CREATE TABLE group_members (
	workspace TEXT NOT NULL, 
	group_name TEXT NOT NULL, 
	user_id INTEGER NOT NULL, 
	PRIMARY KEY (workspace, group_name, user_id), 
	FOREIGN KEY(workspace, group_name) REFERENCES groups (workspace, name) ON DELETE CASCADE ON UPDATE CASCADE, 
	FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE INDEX ix_group_members_user ON group_members (user_id);

CREATE TABLE api_keys (
	id TEXT NOT NULL, 
	workspace TEXT NOT NULL, 
	user_id INTEGER NOT NULL, 
	name TEXT NOT NULL, 
	role TEXT NOT NULL, 
	secret_hash TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	last_used_at DATETIME, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_role CHECK (role IN ('viewer', 'operator', 'developer', 'admin')), 
	FOREIGN KEY(workspace) REFERENCES workspaces (slug) ON DELETE CASCADE, 
	FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE INDEX ix_api_keys_workspace ON api_keys (workspace);

CREATE TABLE sessions (
	id TEXT NOT NULL, 
	user_id INTEGER NOT NULL, 
	secret_hash TEXT NOT NULL, 
	csrf_token TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	expires_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE INDEX ix_sessions_expires ON sessions (expires_at);

CREATE TABLE workflows (
	workspace TEXT NOT NULL, 
	name TEXT NOT NULL, 
	description TEXT NOT NULL, 
	files TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	webhook_id TEXT, 
	webhook_token_hash TEXT, 
	webhook_hmac_secret TEXT, 
	schedule_cron TEXT, 
	schedule_timezone TEXT, 
	schedule_data TEXT, 
	schedule_enabled BOOLEAN NOT NULL, 
	schedule_next_at DATETIME, 
	PRIMARY KEY (workspace, name), 
	CONSTRAINT uq_workflows_webhook_id UNIQUE (webhook_id), 
	FOREIGN KEY(workspace) REFERENCES workspaces (slug) ON DELETE CASCADE
);

CREATE INDEX ix_workflows_schedule_due ON workflows (schedule_next_at) WHERE schedule_enabled AND schedule_next_at IS NOT NULL;
