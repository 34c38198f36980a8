// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice A single governance address that may hand its role over in two steps (so a typo
///         in the new address cannot lock the contract), and time-locked address settings:
///         a setting that is already set changes only GOVERNANCE_DELAY after it was proposed,
///         so that everyone who relies on it (owners with a balance, operators) sees the
///         change coming and can leave first. A zero address is never accepted.
abstract contract Governed {
    /// @notice How long a proposed change of a set address waits before it can be applied.
    uint256 public constant GOVERNANCE_DELAY = 2 days;

    struct PendingChange {
        address value;
        uint64 readyAt;
    }

    address public governor;
    address public pendingGovernor;
    /// @notice Proposed changes of address settings, by setting name.
    mapping(bytes32 => PendingChange) public pendingChanges;

    event GovernorProposed(address indexed current, address indexed proposed);
    event GovernorChanged(address indexed previous, address indexed current);
    event ChangeProposed(bytes32 indexed setting, address value, uint64 readyAt);
    event SettingChanged(bytes32 indexed setting, address previous, address current);

    error NotGovernor(address caller);
    error NotPendingGovernor(address caller);
    error ZeroAddress();
    error NoPendingChange(bytes32 setting);
    error ChangeNotReady(bytes32 setting, uint64 readyAt);

    constructor(address initialGovernor) {
        if (initialGovernor == address(0)) revert ZeroAddress();
        governor = initialGovernor;
        emit GovernorChanged(address(0), initialGovernor);
    }

    modifier onlyGovernor() {
        if (msg.sender != governor) revert NotGovernor(msg.sender);
        _;
    }

    function proposeGovernor(address proposed) external onlyGovernor {
        if (proposed == address(0)) revert ZeroAddress();
        pendingGovernor = proposed;
        emit GovernorProposed(governor, proposed);
    }

    function acceptGovernor() external {
        if (msg.sender != pendingGovernor) revert NotPendingGovernor(msg.sender);
        emit GovernorChanged(governor, msg.sender);
        governor = msg.sender;
        pendingGovernor = address(0);
    }

    /// @dev Set `setting` (now `current`) to `value`: at once while it is unset (deployment
    ///      wiring), otherwise propose it, to be applied with `_applyAddress` after the delay.
    ///      Returns the value in force afterwards.
    function _proposeAddress(bytes32 setting, address current, address value) internal returns (address) {
        if (value == address(0)) revert ZeroAddress();
        if (current == address(0)) {
            emit SettingChanged(setting, address(0), value);
            return value;
        }
        uint64 readyAt = uint64(block.timestamp + GOVERNANCE_DELAY);
        pendingChanges[setting] = PendingChange(value, readyAt);
        emit ChangeProposed(setting, value, readyAt);
        return current;
    }

    /// @dev The proposed value of `setting` (now `current`), once its delay has passed.
    function _applyAddress(bytes32 setting, address current) internal returns (address value) {
        PendingChange memory change = pendingChanges[setting];
        if (change.readyAt == 0) revert NoPendingChange(setting);
        if (block.timestamp < change.readyAt) revert ChangeNotReady(setting, change.readyAt);
        delete pendingChanges[setting];
        emit SettingChanged(setting, current, change.value);
        return change.value;
    }
}
