-- 0003: datasources; secrets are stored sealed (Fernet), config as JSON.

CREATE TABLE datasources (
	workspace TEXT NOT NULL, 
	name TEXT NOT NULL, 
	kind TEXT NOT NULL, 
	config TEXT NOT NULL, 
	secrets TEXT, 
	secret_names TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (workspace, name), 
	FOREIGN KEY(workspace) REFERENCES workspaces (slug) ON DELETE CASCADE
);
