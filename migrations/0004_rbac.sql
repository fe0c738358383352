-- RBAC: tenant settings on the tenants query table, and the roles query table (projection
-- `roles`).

ALTER TABLE tenants ADD COLUMN rbac_enabled boolean NOT NULL DEFAULT false;
ALTER TABLE tenants ADD COLUMN default_role text NOT NULL DEFAULT 'viewer';

CREATE TABLE roles (
    tenant_id   text        NOT NULL,
    name        text        NOT NULL,
    description text        NOT NULL,
    permissions jsonb       NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
