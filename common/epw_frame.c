/* epw_frame: placeholder until the module lands. */
typedef int epw_placeholder_t;
