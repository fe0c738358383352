//! The code table lives with the domain ([`tokenhub_aggregates::Code`]), so a domain error
//! names its code by type; this module re-exports it and holds the documented table
//! (`docs/api.md`, "## Errors") to it.

pub use tokenhub_aggregates::Code;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_table_lists_every_code_under_its_status() {
        let guide = include_str!("../../docs/api.md");
        let table = guide.split("## Errors").nth(1).unwrap_or_default();
        for &code in Code::ALL {
            let row =
                table.lines().find(|l| l.starts_with(&format!("| {} |", code.status()))).unwrap_or_default();
            assert!(
                row.contains(&format!("`{}`", code.as_str())),
                "docs/api.md: `{}` missing from the {} row",
                code.as_str(),
                code.status()
            );
        }
    }
}
