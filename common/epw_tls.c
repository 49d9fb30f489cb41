/* epw_tls: placeholder until the module lands. */
typedef int epw_placeholder_t;
