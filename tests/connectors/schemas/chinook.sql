-- Chinook, a sample database of a digital media store: its tables, columns, keys and foreign
-- keys, schema only.
-- Source: https://github.com/lerocha/chinook-database
-- (ChinookDatabase/DataSources/Chinook_PostgreSql.sql, version 1.4.4), MIT License,
-- Copyright (c) 2008-2017 Luis Rocha. Permission is hereby granted, free of charge, to any person
-- obtaining a copy of this software and associated documentation files (the "Software"), to deal in
-- the Software without restriction, including without limitation the rights to use, copy, modify,
-- merge, publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons
-- to whom the Software is furnished to do so, subject to the following conditions: The above
-- copyright notice and this permission notice shall be included in all copies or substantial
-- portions of the Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS
-- OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A
-- PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE
-- LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
-- OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN
-- THE SOFTWARE.
--
-- Changes for the scanner's tests: no data and no indexes; the foreign keys are declared in the
-- tables (in an order both PostgreSQL and SQLite accept) rather than added after them.

CREATE TABLE artist (
    artist_id INT NOT NULL PRIMARY KEY,
    name VARCHAR(120)
);

CREATE TABLE album (
    album_id INT NOT NULL PRIMARY KEY,
    title VARCHAR(160) NOT NULL,
    artist_id INT NOT NULL REFERENCES artist (artist_id)
);

CREATE TABLE genre (
    genre_id INT NOT NULL PRIMARY KEY,
    name VARCHAR(120)
);

CREATE TABLE media_type (
    media_type_id INT NOT NULL PRIMARY KEY,
    name VARCHAR(120)
);

CREATE TABLE track (
    track_id INT NOT NULL PRIMARY KEY,
    name VARCHAR(200) NOT NULL,
    album_id INT REFERENCES album (album_id),
    media_type_id INT NOT NULL REFERENCES media_type (media_type_id),
    genre_id INT REFERENCES genre (genre_id),
    composer VARCHAR(220),
    milliseconds INT NOT NULL,
    bytes INT,
    unit_price NUMERIC(10,2) NOT NULL
);

CREATE TABLE playlist (
    playlist_id INT NOT NULL PRIMARY KEY,
    name VARCHAR(120)
);

CREATE TABLE playlist_track (
    playlist_id INT NOT NULL REFERENCES playlist (playlist_id),
    track_id INT NOT NULL REFERENCES track (track_id),
    PRIMARY KEY (playlist_id, track_id)
);

CREATE TABLE employee (
    employee_id INT NOT NULL PRIMARY KEY,
    last_name VARCHAR(20) NOT NULL,
    first_name VARCHAR(20) NOT NULL,
    title VARCHAR(30),
    reports_to INT REFERENCES employee (employee_id),
    birth_date TIMESTAMP,
    hire_date TIMESTAMP,
    address VARCHAR(70),
    city VARCHAR(40),
    state VARCHAR(40),
    country VARCHAR(40),
    postal_code VARCHAR(10),
    phone VARCHAR(24),
    fax VARCHAR(24),
    email VARCHAR(60)
);

CREATE TABLE customer (
    customer_id INT NOT NULL PRIMARY KEY,
    first_name VARCHAR(40) NOT NULL,
    last_name VARCHAR(20) NOT NULL,
    company VARCHAR(80),
    address VARCHAR(70),
    city VARCHAR(40),
    state VARCHAR(40),
    country VARCHAR(40),
    postal_code VARCHAR(10),
    phone VARCHAR(24),
    fax VARCHAR(24),
    email VARCHAR(60) NOT NULL,
    support_rep_id INT REFERENCES employee (employee_id)
);

CREATE TABLE invoice (
    invoice_id INT NOT NULL PRIMARY KEY,
    customer_id INT NOT NULL REFERENCES customer (customer_id),
    invoice_date TIMESTAMP NOT NULL,
    billing_address VARCHAR(70),
    billing_city VARCHAR(40),
    billing_state VARCHAR(40),
    billing_country VARCHAR(40),
    billing_postal_code VARCHAR(10),
    total NUMERIC(10,2) NOT NULL
);

CREATE TABLE invoice_line (
    invoice_line_id INT NOT NULL PRIMARY KEY,
    invoice_id INT NOT NULL REFERENCES invoice (invoice_id),
    track_id INT NOT NULL REFERENCES track (track_id),
    unit_price NUMERIC(10,2) NOT NULL,
    quantity INT NOT NULL
);
