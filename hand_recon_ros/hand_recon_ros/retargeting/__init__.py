"""Robot-hand retargeting (dex-retargeting): camera-frame joints -> operator frame -> robot joint positions."""
