"""Django's PostgreSQL backend with a connection pool whose health check costs no round trip
(``ENGINE = "product.postgres"``; see ``base``)."""
