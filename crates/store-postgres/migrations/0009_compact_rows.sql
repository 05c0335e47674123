-- Version 9 re-encodes SQLite's operations row (ARCHITECTURE.md, "Storage size":
-- project numbers, 16-byte ids, enum codes, creation order by seq). PostgreSQL keeps its
-- schema: several processes stamp with their own clocks, so creation order is not seq
-- order there, and its indexes keep the times. The version exists on both backends so
-- that one number names one release's schema everywhere.
SELECT 1;
