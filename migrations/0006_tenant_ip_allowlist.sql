-- Tenant IP allowlist: on the tenants query table, and in the key lookup (NULL = off).
ALTER TABLE tenants ADD COLUMN ip_allowlist_enabled boolean NOT NULL DEFAULT false;
ALTER TABLE tenants ADD COLUMN ip_allowlist jsonb NOT NULL DEFAULT '[]';
ALTER TABLE key_tenants ADD COLUMN allowlist jsonb;
