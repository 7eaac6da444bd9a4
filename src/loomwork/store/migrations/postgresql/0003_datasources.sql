-- 0003: datasources; secrets are stored sealed (Fernet), config as JSON.

CREATE TABLE datasources (
	workspace TEXT NOT NULL, 
	name TEXT NOT NULL, 
	kind TEXT NOT NULL, 
	config JSONB NOT NULL, 
	secrets TEXT, 
	secret_names JSONB NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (workspace, name), 
	FOREIGN KEY(workspace) REFERENCES workspaces (slug) ON DELETE CASCADE
);
