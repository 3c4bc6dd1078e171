-- Pagila, the PostgreSQL port of MySQL's Sakila sample database: its tables, columns, keys and
-- foreign keys, schema only.
-- Source: https://github.com/devrimgunduz/pagila (pagila-schema.sql), PostgreSQL License,
-- Copyright (c) 2015-2026, Devrim Gunduz. Permission to use, copy, modify, and distribute this
-- software and its documentation for any purpose, without fee, and without a written agreement is
-- hereby granted, provided that the above copyright notice and this paragraph and the following two
-- paragraphs appear in all copies. IN NO EVENT SHALL DEVRIM GUNDUZ BE LIABLE TO ANY PARTY FOR
-- DIRECT, INDIRECT, SPECIAL, INCIDENTAL, OR CONSEQUENTIAL DAMAGES, INCLUDING LOST PROFITS, ARISING
-- OUT OF THE USE OF THIS SOFTWARE AND ITS DOCUMENTATION, EVEN IF DEVRIM GUNDUZ HAS BEEN ADVISED OF
-- THE POSSIBILITY OF SUCH DAMAGE. DEVRIM GUNDUZ SPECIFICALLY DISCLAIMS ANY WARRANTIES, INCLUDING,
-- BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR
-- PURPOSE. THE SOFTWARE PROVIDED HEREUNDER IS ON AN "AS IS" BASIS, AND DEVRIM GUNDUZ HAS NO
-- OBLIGATIONS TO PROVIDE MAINTENANCE, SUPPORT, UPDATES, ENHANCEMENTS, OR MODIFICATIONS.
--
-- Changes for the scanner's tests: no data, functions, triggers, views or sequences; the `year`
-- domain is an integer; the payment_p2015_* partitions are left out; primary and foreign keys are
-- declared in the tables, in an order PostgreSQL accepts, and the store/staff cycle is closed at
-- the end with deferrable keys so that the tests' own small rows can be inserted.

CREATE TYPE mpaa_rating AS ENUM ('G', 'PG', 'PG-13', 'R', 'NC-17');

CREATE TABLE actor (
    actor_id integer PRIMARY KEY,
    first_name character varying(45) NOT NULL,
    last_name character varying(45) NOT NULL,
    last_update timestamp without time zone DEFAULT now() NOT NULL
);

CREATE TABLE category (
    category_id integer PRIMARY KEY,
    name character varying(25) NOT NULL,
    last_update timestamp without time zone DEFAULT now() NOT NULL
);

CREATE TABLE language (
    language_id integer PRIMARY KEY,
    name character(20) NOT NULL,
    last_update timestamp without time zone DEFAULT now() NOT NULL
);

CREATE TABLE film (
    film_id integer PRIMARY KEY,
    title character varying(255) NOT NULL,
    description text,
    release_year integer,
    language_id smallint NOT NULL REFERENCES language (language_id) ON UPDATE CASCADE ON DELETE RESTRICT,
    original_language_id smallint REFERENCES language (language_id) ON UPDATE CASCADE ON DELETE RESTRICT,
    rental_duration smallint DEFAULT 3 NOT NULL,
    rental_rate numeric(4,2) DEFAULT 4.99 NOT NULL,
    length smallint,
    replacement_cost numeric(5,2) DEFAULT 19.99 NOT NULL,
    rating mpaa_rating DEFAULT 'G'::mpaa_rating,
    last_update timestamp without time zone DEFAULT now() NOT NULL,
    special_features text[],
    fulltext tsvector
);

CREATE TABLE film_actor (
    actor_id smallint NOT NULL REFERENCES actor (actor_id) ON UPDATE CASCADE ON DELETE RESTRICT,
    film_id smallint NOT NULL REFERENCES film (film_id) ON UPDATE CASCADE ON DELETE RESTRICT,
    last_update timestamp without time zone DEFAULT now() NOT NULL,
    PRIMARY KEY (actor_id, film_id)
);

CREATE TABLE film_category (
    film_id smallint NOT NULL REFERENCES film (film_id) ON UPDATE CASCADE ON DELETE RESTRICT,
    category_id smallint NOT NULL REFERENCES category (category_id) ON UPDATE CASCADE ON DELETE RESTRICT,
    last_update timestamp without time zone DEFAULT now() NOT NULL,
    PRIMARY KEY (film_id, category_id)
);

CREATE TABLE country (
    country_id integer PRIMARY KEY,
    country character varying(50) NOT NULL,
    last_update timestamp without time zone DEFAULT now() NOT NULL
);

CREATE TABLE city (
    city_id integer PRIMARY KEY,
    city character varying(50) NOT NULL,
    country_id smallint NOT NULL REFERENCES country (country_id) ON UPDATE CASCADE ON DELETE RESTRICT,
    last_update timestamp without time zone DEFAULT now() NOT NULL
);

CREATE TABLE address (
    address_id integer PRIMARY KEY,
    address character varying(50) NOT NULL,
    address2 character varying(50),
    district character varying(20) NOT NULL,
    city_id smallint NOT NULL REFERENCES city (city_id) ON UPDATE CASCADE ON DELETE RESTRICT,
    postal_code character varying(10),
    phone character varying(20) NOT NULL,
    last_update timestamp without time zone DEFAULT now() NOT NULL
);

CREATE TABLE store (
    store_id integer PRIMARY KEY,
    manager_staff_id smallint NOT NULL,
    address_id smallint NOT NULL REFERENCES address (address_id) ON UPDATE CASCADE ON DELETE RESTRICT,
    last_update timestamp without time zone DEFAULT now() NOT NULL
);

CREATE TABLE staff (
    staff_id integer PRIMARY KEY,
    first_name character varying(45) NOT NULL,
    last_name character varying(45) NOT NULL,
    address_id smallint NOT NULL REFERENCES address (address_id) ON UPDATE CASCADE ON DELETE RESTRICT,
    email character varying(50),
    store_id smallint NOT NULL REFERENCES store (store_id),
    active boolean DEFAULT true NOT NULL,
    username character varying(16) NOT NULL,
    password character varying(40),
    last_update timestamp without time zone DEFAULT now() NOT NULL,
    picture bytea
);

ALTER TABLE store ADD CONSTRAINT store_manager_staff_id_fkey FOREIGN KEY (manager_staff_id) REFERENCES staff (staff_id)
    ON UPDATE CASCADE ON DELETE RESTRICT DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE customer (
    customer_id integer PRIMARY KEY,
    store_id smallint NOT NULL REFERENCES store (store_id) ON UPDATE CASCADE ON DELETE RESTRICT,
    first_name character varying(45) NOT NULL,
    last_name character varying(45) NOT NULL,
    email character varying(50),
    address_id smallint NOT NULL REFERENCES address (address_id) ON UPDATE CASCADE ON DELETE RESTRICT,
    activebool boolean DEFAULT true NOT NULL,
    create_date date DEFAULT ('now'::text)::date NOT NULL,
    last_update timestamp without time zone DEFAULT now(),
    active integer
);

CREATE TABLE inventory (
    inventory_id integer PRIMARY KEY,
    film_id smallint NOT NULL REFERENCES film (film_id) ON UPDATE CASCADE ON DELETE RESTRICT,
    store_id smallint NOT NULL REFERENCES store (store_id) ON UPDATE CASCADE ON DELETE RESTRICT,
    last_update timestamp without time zone DEFAULT now() NOT NULL
);

CREATE TABLE rental (
    rental_id integer PRIMARY KEY,
    rental_date timestamp without time zone NOT NULL,
    inventory_id integer NOT NULL REFERENCES inventory (inventory_id) ON UPDATE CASCADE ON DELETE RESTRICT,
    customer_id smallint NOT NULL REFERENCES customer (customer_id) ON UPDATE CASCADE ON DELETE RESTRICT,
    return_date timestamp without time zone,
    staff_id smallint NOT NULL REFERENCES staff (staff_id) ON UPDATE CASCADE ON DELETE RESTRICT,
    last_update timestamp without time zone DEFAULT now() NOT NULL
);

CREATE TABLE payment (
    payment_id integer PRIMARY KEY,
    customer_id smallint NOT NULL REFERENCES customer (customer_id) ON UPDATE CASCADE ON DELETE RESTRICT,
    staff_id smallint NOT NULL REFERENCES staff (staff_id) ON UPDATE CASCADE ON DELETE RESTRICT,
    rental_id integer NOT NULL REFERENCES rental (rental_id) ON UPDATE CASCADE ON DELETE SET NULL,
    amount numeric(5,2) NOT NULL,
    payment_date timestamp without time zone NOT NULL
);
