"""The file ``streamlit run`` executes (``wattwatch dashboard`` starts it)."""

from wattwatch.dashboard.app import main

main()
