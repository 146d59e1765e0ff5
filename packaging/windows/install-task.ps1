<#
.SYNOPSIS
  Runs shipper in follow mode at start-up on a Windows server, as a scheduled task.

.DESCRIPTION
  The alternative to the Windows service (py -m pip install "rms-shipper[windows]", then
  shipper service install --config ...): a scheduled task that starts at boot and restarts on
  failure, which needs nothing beyond Python. Stopping the task (End-ScheduledTask) ends the
  process without the clean stop a service gets: safe (the uncommitted batch is read and sent
  again, dedupe keeps it once), just not tidy. Install Python 3.10+ and shipper first:
      py -m pip install rms-shipper
  then run this script from an elevated PowerShell:
      .\install-task.ps1 -Config C:\ProgramData\shipper\shipper.yaml
  Secrets: set them as machine environment variables (for example ES_API_KEY) and refer to
  them as ${ES_API_KEY} in the config, or use api_key_file / password_file.
#>
param(
    [Parameter(Mandatory = $true)] [string] $Config,
    [string] $TaskName = "shipper",
    [string] $WorkingDirectory = "C:\ProgramData\shipper"
)

New-Item -ItemType Directory -Force -Path $WorkingDirectory | Out-Null
$shipper = (Get-Command shipper.exe -ErrorAction Stop).Source
$action = New-ScheduledTaskAction -Execute $shipper -Argument "run `"$Config`"" `
    -WorkingDirectory $WorkingDirectory
$trigger = New-ScheduledTaskTrigger -AtStartup
$settings = New-ScheduledTaskSettingsSet -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) `
    -ExecutionTimeLimit ([TimeSpan]::Zero) -StartWhenAvailable
Register-ScheduledTask -TaskName $TaskName -Action $action -Trigger $trigger -Settings $settings `
    -User "SYSTEM" -RunLevel Highest -Force
Start-ScheduledTask -TaskName $TaskName
Write-Host "Task '$TaskName' installed and started; check with: Get-ScheduledTask $TaskName"
