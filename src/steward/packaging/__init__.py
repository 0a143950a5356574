"""Data packages: manifests, BagIt/RO-Crate bags, reports and download scripts."""
