# tests/detect.cmake: the collector's alert rules (collector/detect.c), pure and clock-driven.
if(TARGET epw_detect)
    epw_unit_test(detect LIBS epw_detect
                  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/support/epw_testsnap.c)
endif()
