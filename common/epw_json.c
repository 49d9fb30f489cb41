/* epw_json: placeholder until the module lands. */
typedef int epw_placeholder_t;
