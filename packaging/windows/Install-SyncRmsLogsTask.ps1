<#
.SYNOPSIS
  Registers two scheduled tasks that run Sync-RmsLogs.ps1: one fetching usage logs, one
  exporting RMS connector / ECMA2Host events.

.DESCRIPTION
  Usage logs are published per whole UTC day, so fetching them every few hours is plenty (the
  default: every 6 hours); events are exported every 15 minutes. Neither task starts a second
  copy of itself while one still runs. Run from an elevated PowerShell:

      .\Install-SyncRmsLogsTask.ps1 -UsageLogPath D:\RMSLogs -EventPath D:\Exports `
          -CredentialPath C:\ProgramData\shipper-sync\aip.cred -User CONTOSO\svc-rmslogs

  The account needs: for usage logs, a credential allowed to read them (saved beforehand,
  logged on as that account, with  Get-Credential | Export-Clixml <CredentialPath>); for
  events, membership of "Event Log Readers". Without -User the tasks run as SYSTEM, which can
  read the event logs but cannot read a credential file saved by another account: pass
  -UsageLogs:$false to install the events task only, or use -ConnectParameters with a
  certificate where your AIPService version supports it.

  Remove the tasks with:  .\Install-SyncRmsLogsTask.ps1 -Remove
#>
[CmdletBinding()]
param(
    [string] $UsageLogPath,
    [string] $EventPath,
    [string] $StatePath = (Join-Path $env:ProgramData 'shipper-sync'),
    [string] $CredentialPath,
    [string] $User = 'SYSTEM',
    [bool] $UsageLogs = $true,
    [bool] $Events = $true,
    [ValidateRange(1, 24)] [int] $UsageLogEveryHours = 6,
    [ValidateRange(1, 1440)] [int] $EventsEveryMinutes = 15,
    [ValidateRange(1, 32)] [int] $NumberOfThreads = 3,
    [string] $TaskPrefix = 'shipper Sync-RmsLogs',
    [switch] $Remove
)

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'

$usageTask = "$TaskPrefix usage logs"
$eventsTask = "$TaskPrefix events"

if ($Remove) {
    foreach ($t in $usageTask, $eventsTask) {
        if (Get-ScheduledTask -TaskName $t -ErrorAction SilentlyContinue) {
            Unregister-ScheduledTask -TaskName $t -Confirm:$false
            Write-Host "removed task '$t'"
        }
    }
    return
}

$script = Join-Path $PSScriptRoot 'Sync-RmsLogs.ps1'
if (-not (Test-Path -LiteralPath $script)) { throw "Sync-RmsLogs.ps1 is not beside this installer ($script)" }
if ($UsageLogs -and -not $UsageLogPath) { throw '-UsageLogPath is required (or -UsageLogs:$false)' }
if ($Events -and -not $EventPath) { throw '-EventPath is required (or -Events:$false)' }

# Windows PowerShell is on every server; the AIPService module targets it.
$powershell = Join-Path $env:SystemRoot 'System32\WindowsPowerShell\v1.0\powershell.exe'
$common = "-NoProfile -NonInteractive -ExecutionPolicy Bypass -File `"$script`" -StatePath `"$StatePath`""

$settings = New-ScheduledTaskSettingsSet -MultipleInstances IgnoreNew -StartWhenAvailable `
    -ExecutionTimeLimit (New-TimeSpan -Hours 4) -RestartCount 3 -RestartInterval (New-TimeSpan -Minutes 10)

if ($User -eq 'SYSTEM') {
    $principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
} else {
    $cred = Get-Credential -UserName $User -Message "Password of $User, the account the sync tasks run as"
    $principal = $null
}

function Register-SyncTask([string] $Name, [string] $Arguments, $Trigger) {
    $action = New-ScheduledTaskAction -Execute $powershell -Argument "$common $Arguments"
    if ($principal) {
        Register-ScheduledTask -TaskName $Name -Action $action -Trigger $Trigger -Settings $settings `
            -Principal $principal -Force | Out-Null
    } else {
        $plain = $cred.GetNetworkCredential().Password
        Register-ScheduledTask -TaskName $Name -Action $action -Trigger $Trigger -Settings $settings `
            -User $cred.UserName -Password $plain -RunLevel Highest -Force | Out-Null
    }
    Write-Host "task '$Name' installed: $powershell $common $Arguments"
}

if ($UsageLogs) {
    $arguments = "-UsageLogs -UsageLogPath `"$UsageLogPath`" -NumberOfThreads $NumberOfThreads"
    if ($CredentialPath) { $arguments += " -CredentialPath `"$CredentialPath`"" }
    $trigger = New-ScheduledTaskTrigger -Once -At (Get-Date).Date.AddMinutes(30) `
        -RepetitionInterval (New-TimeSpan -Hours $UsageLogEveryHours)
    Register-SyncTask $usageTask $arguments $trigger
}
if ($Events) {
    $trigger = New-ScheduledTaskTrigger -Once -At (Get-Date).Date `
        -RepetitionInterval (New-TimeSpan -Minutes $EventsEveryMinutes)
    Register-SyncTask $eventsTask "-Events -EventPath `"$EventPath`"" $trigger
}
Write-Host "log: $(Join-Path $StatePath 'Sync-RmsLogs.log'); run now with: Start-ScheduledTask '<name>'"
