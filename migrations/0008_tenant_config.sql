-- Tenant configuration on the tenants query table (its versions are events: tenant.config_saved).
ALTER TABLE tenants ADD COLUMN config jsonb NOT NULL DEFAULT '{}';
ALTER TABLE tenants ADD COLUMN config_version bigint NOT NULL DEFAULT 0;
